-- Sample data for the demo: a small shop whose customers table holds personal data
-- (names, emails, phone numbers, payment cards, national ids), so that recording, guardrails
-- and masking have something real to work on. Card numbers are the public test numbers of the
-- card networks (Luhn-valid, never issued); SSNs use the 9xx range that is never assigned.
CREATE TABLE customers (
    id          integer PRIMARY KEY,
    full_name   text NOT NULL,
    email       text NOT NULL UNIQUE,
    phone       text,
    card_number text,
    national_id text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (id),
    amount      numeric(10, 2) NOT NULL,
    status      text NOT NULL CHECK (status IN ('new', 'paid', 'shipped', 'refunded')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO customers (id, full_name, email, phone, card_number, national_id, created_at)
SELECT i,
       first || ' ' || last,
       lower(first) || '.' || lower(last) || i || '@example.com',
       '+1-555-' || lpad((1000 + i * 37 % 9000)::text, 4, '0'),
       (ARRAY['4111111111111111', '5555555555554444', '378282246310005',
              '6011111111111117', '4012888888881881', '5105105105105100'])[1 + i % 6],
       '9' || lpad((i * 7 % 100)::text, 2, '0') || '-' || lpad((i % 100)::text, 2, '0') || '-'
           || lpad((1000 + i * 13 % 9000)::text, 4, '0'),
       timestamptz '2026-01-01 00:00:00+00' + i * interval '7 hours'
FROM generate_series(1, 200) AS i,
     LATERAL (SELECT (ARRAY['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances',
                            'Ken', 'Radia', 'Tony'])[1 + i % 10] AS first,
                     (ARRAY['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth',
                            'Allen', 'Thompson', 'Perlman', 'Hoare', 'Hamilton'])[1 + i % 11]
                         AS last) AS n;

INSERT INTO orders (customer_id, amount, status, created_at)
SELECT 1 + i % 200,
       round((5 + (i * 7919 % 50000) / 100.0)::numeric, 2),
       (ARRAY['new', 'paid', 'shipped', 'refunded'])[1 + i % 4],
       timestamptz '2026-02-01 00:00:00+00' + i * interval '13 minutes'
FROM generate_series(1, 2000) AS i;

ANALYZE customers;
ANALYZE orders;
