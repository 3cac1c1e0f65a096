"""Schema and forward migrations. ``MIGRATIONS[i]`` takes a store from version i to i + 1."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        protocol TEXT NOT NULL,
        connection TEXT NOT NULL,
        identity TEXT,
        identity_kind TEXT,
        client_addr TEXT,
        application_name TEXT,
        database TEXT,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL,
        end_reason TEXT
    );
    CREATE INDEX sessions_started ON sessions (started_at);
    CREATE TABLE statements (
        session_id TEXT NOT NULL REFERENCES sessions (id),
        seq INTEGER NOT NULL,
        protocol TEXT NOT NULL,
        text TEXT NOT NULL,
        params TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        duration_ms REAL,
        status TEXT NOT NULL,
        command TEXT,
        rows INTEGER,
        sqlstate TEXT,
        error TEXT,
        PRIMARY KEY (session_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        session_id TEXT NOT NULL,
        ref INTEGER NOT NULL,
        body TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    """,
    # 2: guardrail verdicts on statements, and approval requests.
    """
    ALTER TABLE statements ADD COLUMN verdict TEXT NOT NULL DEFAULT 'allow';
    ALTER TABLE statements ADD COLUMN rule TEXT;
    ALTER TABLE statements ADD COLUMN approval_id TEXT;
    CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id),
        requester TEXT NOT NULL,
        connection TEXT NOT NULL,
        statement TEXT NOT NULL,
        statement_hash TEXT NOT NULL,
        rule TEXT,
        reason TEXT,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        status TEXT NOT NULL,
        approvals TEXT,
        decided_at TEXT,
        decided_by TEXT,
        decision_reason TEXT
    );
    CREATE INDEX approvals_status ON approvals (status);
    """,
    # 3: SSH sessions. Commands share the statements table (protocol 'ssh') and add their exit
    # status; terminal and channel bytes live in ssh_output, one row per recorded chunk, while
    # the audit chain holds each chunk's size and SHA-256 (not the bytes twice).
    """
    ALTER TABLE statements ADD COLUMN exit_status INTEGER;
    ALTER TABLE sessions ADD COLUMN target TEXT;
    CREATE TABLE ssh_output (
        session_id TEXT NOT NULL REFERENCES sessions (id),
        seq INTEGER NOT NULL,
        t REAL NOT NULL,
        channel INTEGER NOT NULL,
        stream TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (session_id, seq)
    ) WITHOUT ROWID;
    """,
    # 4: masking counts, as JSON objects {"rule:detector-or-column": count}: per statement (its
    # result, notices and errors) and per session (SSH output).
    """
    ALTER TABLE statements ADD COLUMN masked TEXT;
    ALTER TABLE sessions ADD COLUMN masked TEXT;
    """,
    # 5: a session's audit records without scanning the whole chain (exports, verification of
    # an exported file).
    """
    CREATE INDEX audit_session ON audit (session_id, seq);
    """,
    # 6: the vendor of an agent identity (an OIDC claim), for sessions and statistics.
    """
    ALTER TABLE sessions ADD COLUMN identity_vendor TEXT;
    """,
    # 7: what journal replay found and could not apply (a record that does not continue the
    # chain, or takes a place another record holds, bytes that are not records, a write a
    # crash cut short), kept as it was found: verify names each one.
    """
    CREATE TABLE rejected (
        id INTEGER PRIMARY KEY,
        found_at TEXT NOT NULL,
        source TEXT NOT NULL,
        seq INTEGER,
        kind TEXT,
        session_id TEXT,
        torn INTEGER NOT NULL,
        reason TEXT NOT NULL,
        data BLOB NOT NULL
    );
    """,
    # 8: lock-outs (``store.lockouts``): an identity kept out of every connection (connection
    # NULL) or of one until a time, unless lifted.
    """
    CREATE TABLE lockouts (
        id TEXT PRIMARY KEY,
        identity TEXT NOT NULL,
        connection TEXT,
        until TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        reason TEXT NOT NULL,
        session_id TEXT,
        lifted_at TEXT,
        lifted_by TEXT,
        lift_reason TEXT
    );
    CREATE INDEX lockouts_until ON lockouts (until);
    """,
    # 9: nodes (``store.nodes``). Each node writes its own audit chain, keyed (node, seq); the
    # records written before are the chain of the node that was the default one (``:node``,
    # the host's name, bound when the migration runs). Sessions and approvals name the node
    # that opened them; ``nodes`` holds who writes the store and their heartbeats (the node
    # from before is listed, never having sent one, when it wrote anything: so that another
    # node takes over what it left), ``fleet_commands`` what one node asks of another.
    """
    CREATE TABLE audit_by_node (
        node TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        session_id TEXT NOT NULL,
        ref INTEGER NOT NULL,
        body TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (node, seq)
    ) WITHOUT ROWID;
    INSERT INTO audit_by_node (node, seq, kind, session_id, ref, body, prev, hash)
        SELECT :node, seq, kind, session_id, ref, body, prev, hash FROM audit;
    DROP TABLE audit;
    ALTER TABLE audit_by_node RENAME TO audit;
    CREATE INDEX audit_session ON audit (session_id, node, seq);
    ALTER TABLE sessions ADD COLUMN node TEXT NOT NULL DEFAULT '';
    ALTER TABLE approvals ADD COLUMN node TEXT NOT NULL DEFAULT '';
    UPDATE sessions SET node = :node;
    UPDATE approvals SET node = :node;
    CREATE INDEX sessions_node ON sessions (node, status);
    CREATE INDEX approvals_node ON approvals (node, status);
    CREATE TABLE nodes (
        name TEXT PRIMARY KEY,
        host TEXT,
        pid INTEGER,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL,
        stopped_at TEXT,
        lost_at TEXT,
        lost_by TEXT,
        info TEXT
    );
    INSERT INTO nodes (name, started_at, heartbeat_at)
        SELECT :node, '', '' WHERE EXISTS (SELECT 1 FROM audit);
    CREATE TABLE fleet_commands (
        id INTEGER PRIMARY KEY,
        node TEXT NOT NULL,
        command TEXT NOT NULL,
        created_at TEXT NOT NULL,
        taken_at TEXT
    );
    CREATE INDEX fleet_commands_node ON fleet_commands (node, id);
    """,
    # 10: the one node whose chain starts at the all-zero hash (``store.nodes.genesis``): the
    # default node of the machine that migrated the store, whose chain holds the records from
    # before nodes; every other chain starts at a hash of its node's name.
    """
    CREATE TABLE zero_chain (node TEXT NOT NULL);
    INSERT INTO zero_chain (node) VALUES (:node);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
