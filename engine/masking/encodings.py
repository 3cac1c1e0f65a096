"""PostgreSQL's encoding names and the Python codecs that read them: the session's encodings
(``engine.pg.encoding``) and a COPY's own ``ENCODING`` option (``engine.masking.copyline``)."""

from __future__ import annotations

# PostgreSQL's encoding names (as ParameterStatus reports them) → Python codecs. Encodings
# missing here (EUC_TW, MULE_INTERNAL) cannot be decoded: a session using one is refused.
CODECS = {
    "UTF8": "utf-8", "SQL_ASCII": "utf-8",
    "LATIN1": "iso8859-1", "LATIN2": "iso8859-2", "LATIN3": "iso8859-3", "LATIN4": "iso8859-4",
    "LATIN5": "iso8859-9", "LATIN6": "iso8859-10", "LATIN7": "iso8859-13",
    "LATIN8": "iso8859-14", "LATIN9": "iso8859-15", "LATIN10": "iso8859-16",
    "ISO_8859_5": "iso8859-5", "ISO_8859_6": "iso8859-6", "ISO_8859_7": "iso8859-7",
    "ISO_8859_8": "iso8859-8",
    "WIN866": "cp866", "WIN874": "cp874", "WIN1250": "cp1250", "WIN1251": "cp1251",
    "WIN1252": "cp1252", "WIN1253": "cp1253", "WIN1254": "cp1254", "WIN1255": "cp1255",
    "WIN1256": "cp1256", "WIN1257": "cp1257", "WIN1258": "cp1258",
    "KOI8R": "koi8-r", "KOI8U": "koi8-u",
    "EUC_JP": "euc-jp", "EUC_CN": "gb2312", "EUC_KR": "euc-kr", "EUC_JIS_2004": "euc-jis-2004",
    # Refused as client encodings by the guard (engine.guardrail.reading), decodable all the same.
    "SJIS": "cp932", "SHIFT_JIS_2004": "shift-jis-2004", "BIG5": "big5", "GBK": "gbk",
    "UHC": "cp949", "GB18030": "gb18030", "JOHAB": "johab",
}
# Other spellings PostgreSQL accepts for the same encodings (it reports the canonical one, but a
# hand-made server or an old one may not).
_ALIASES = {"UNICODE": "UTF8", "UTF_8": "UTF8", "ISO88591": "LATIN1", "ISO_8859_1": "LATIN1",
            "WIN": "WIN1251", "ALT": "WIN866", "KOI8": "KOI8R", "SHIFT_JIS": "SJIS"}


def canonical(name: str) -> str:
    upper = name.strip().upper().replace("-", "_")
    return _ALIASES.get(upper, upper)
