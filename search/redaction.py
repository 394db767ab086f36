"""Credentials never leave the experiment's own config: one function, :func:`redact`, masks them at every exit.

Every exit of hypernas goes through :func:`redact` — MLflow params, tags, metric names and the text artifacts we
write (``config.yaml``, ``traceback.txt``, ``attempt-N-*.txt``), the Parquet tables (``params``, ``error``,
``attempt_history``) and so the Parquet artifacts, the decision log, console and error messages (``ConfigError``
included), ``hypernas validate`` and the entrypoint ``hypernas submit`` prints. It masks three ways:

* **by name** — a value whose setting or parameter name is a secret word (:func:`looks_secret`) is replaced
  whole: ``{"api_key": "abc"}`` → ``{"api_key": "***"}``;
* **by value** — every secret value this process knows (:func:`known_secrets`: the values of secret-named
  settings anywhere in a loaded config, passwords inside URLs, and secret-looking environment variables such as
  ``MLFLOW_TRACKING_PASSWORD``) is masked wherever it appears in text: an exception that quotes a token is
  masked although nothing names it;
* **by shape** — ``https://user:***@host`` (URL passwords), ``https://***@host`` (a user name alone, which
  GitHub and many services accept a token as) and ``?token=***``, ``&key=***``, ``password=***``,
  ``api_key='***'``, ``password = "***"``, ``"api_key": "***"`` (secret-named assignments in query strings,
  command lines, code, JSON and reprs).

A trial's exception is masked where it is raised, in the Ray worker (:func:`redacted_exception`), so neither
Ray's console, Ray's files (``error.txt``, ``error.pkl``) nor our records ever see the raw text.

The experiment's own files that resuming and testing need keep the real values: ``config.yaml``, the journals
(``journal.jsonl``, ``optuna.journal``) and Ray Tune's resume state under ``tune/`` (``tuner.pkl``,
``experiment_state-*.json``, which hold each trial's configuration). They are the user's inputs on the user's
disk; nothing we print, log or export reads them unmasked.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import re
import traceback
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import quote

REDACTED = "***"
NAME_MASK = "REDACTED"  # in names (MLflow metric/param keys), where "*" is not allowed
MIN_SECRET_LENGTH = 4
# Environment variable carrying ``--set`` items that hold secrets from ``hypernas submit`` to the job's
# ``hypernas run`` (a JSON list of ``key=value``): through Ray's runtime env, never in the printed entrypoint.
SECRET_OVERRIDES_ENV = "HYPERNAS_SECRET_OVERRIDES"

# --- names ------------------------------------------------------------------------------------------------------

# A name is split into words at separators (anything but letters and digits) and at camelCase boundaries
# ("apiKey" → api key, "APIKey" → api key, "APIKEY" stays one word); digit runs are dropped ("token2" → token).
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
# The last word decides: a name says what it holds at its end ("api_key", "db.password", "GITHUB_TOKEN"), while a
# secret word elsewhere only qualifies ("key_dim" is a dimension, "token_count" a count). Plurals of key and token
# are collections or counts ("num_keys", "max_tokens", "missing_keys", "prompt_tokens") unless a credential word
# precedes them ("api_keys", "access_tokens", see _SECRET_PLURAL_AFTER); secrets, passwords and credentials stay
# secret. "pwd" is a password only after another word ("db_pwd", "MYSQL_PWD"): the bare PWD and OLDPWD
# environment variables are directories.
_SECRET_WORDS = frozenset({
    "key", "token", "secret", "secrets", "password", "passwords", "passwd", "passphrase", "credential",
    "credentials", "creds", "auth", "authorization", "apikey", "accesskey", "secretkey", "privatekey", "authtoken",
    "accesstoken", "sessiontoken", "clientsecret", "apikeys", "authtokens", "accesstokens",
})
# One-word names written without separators end in these: "APIKEY", "DBPASSWORD", "MYTOKEN", "OAUTH" — but
# not "monkey", "keyword", "tokenizer" or "author".
_SECRET_ENDINGS = ("apikey", "accesskey", "secretkey", "privatekey", "password", "passwd", "passphrase", "secret",
                   "token", "oauth")
# The last two words written as one: "pass_phrase", "passPhrase", "pass_word".
_SECRET_PAIRS = frozenset({"passphrase", "password", "apikey", "accesskey", "secretkey", "privatekey"})
# Keys and tokens that are not credentials, named by what precedes them: a tokenizer's special tokens ("pad_token",
# "eos_token") and data-structure or random-generator keys ("sort_key", "partition_key", "rng_key").
# Attention and embedding keys ("query_key", "attn_key", "kv_key") are model parameters, not credentials.
_NOT_SECRET_BEFORE = {
    "token": frozenset({"bos", "eos", "pad", "unk", "sep", "cls", "mask", "start", "end", "special"}),
    "key": frozenset({"sort", "primary", "foreign", "hash", "partition", "cache", "dict", "rng", "prng", "group",
                      "shard", "join", "lookup", "index",
                      "query", "value", "attn", "attention", "embed", "embedding", "emb", "proj", "projection",
                      "head", "heads", "kv", "qkv", "self", "cross", "memory", "pos", "position", "positional",
                      "rotary", "dropout", "init", "noise", "sample", "label", "target", "feature", "column",
                      "field", "metric", "input", "output"}),
}
# "keys" and "tokens" are secret only after one of these ("api_keys", "ssh_keys", "access_tokens", "apiTokens").
_SECRET_PLURAL_AFTER = frozenset({
    "api", "access", "secret", "private", "ssh", "auth", "session", "refresh", "bearer", "oauth", "encryption",
    "signing", "client", "service", "deploy", "personal", "master", "gpg", "pgp", "jwt", "webhook"})
# A secret word followed by one of these still names the secret itself: "token_value", "password_text",
# "secret_key_base" (Rails), "private_key_pem".
_VALUE_WORDS = frozenset({"value", "string", "str", "text", "b64", "base64", "hex", "base", "pem", "der"})
# Settings under a secret name that describe the parameter rather than hold the secret (a space's categorical
# ``api_key: {type: categorical, choices: [...]}``: its choices are secrets, "categorical" is not).
_STRUCTURAL_KEYS = frozenset({"type", "when", "log", "step", "low", "high"})
# Values too common to be worth masking: masking them would rewrite ordinary output ("false", "null").
_TRIVIAL = frozenset({"true", "false", "none", "null", "yes", "no", "on", "off", "nan", "inf", REDACTED})
_PLACEHOLDERS = frozenset({"value", "values", "...", "***", "redacted", "secret", "token", "password", "key"})


def name_words(name: str) -> tuple[str, ...]:
    """The lowercased words of a name (see the splitting rule above).

    >>> name_words("apiKey"), name_words("AWS_SECRET_ACCESS_KEY"), name_words("num_keys2")
    (('api', 'key'), ('aws', 'secret', 'access', 'key'), ('num', 'keys'))
    """
    return tuple(word.lower() for word in _WORD.findall(name))


@functools.lru_cache(maxsize=4096)
def looks_secret(name: str) -> bool:
    """Whether a setting, parameter or variable name says it holds a credential (decided by its last word).

    >>> [looks_secret(n) for n in ("api_key", "apiKey", "APIKEY", "db.password", "GITHUB_TOKEN", "passphrase")]
    [True, True, True, True, True, True]
    >>> [looks_secret(n) for n in ("key_dim", "num_keys", "tokenizer", "keyword", "monkey", "author", "lr")]
    [False, False, False, False, False, False, False]
    >>> [looks_secret(n) for n in ("api_keys", "secret_key_base", "db_pwd", "PWD", "query_key", "missing_keys")]
    [True, True, True, False, False, False]
    """
    return _words_secret(name_words(name))


def _words_secret(words: tuple[str, ...]) -> bool:
    if not words:
        return False
    last = words[-1]
    if len(words) >= 2 and last in _VALUE_WORDS:
        return _words_secret(words[:-1])
    if len(words) >= 2 and words[-2] in _NOT_SECRET_BEFORE.get(last, ()):
        return False
    if last in ("keys", "tokens"):
        return len(words) >= 2 and words[-2] in _SECRET_PLURAL_AFTER
    if last == "pwd":
        return len(words) >= 2
    return _is_secret_word(last) or (len(words) >= 2 and words[-2] + last in _SECRET_PAIRS)


def _is_secret_word(word: str) -> bool:
    return word in _SECRET_WORDS or word.endswith(_SECRET_ENDINGS)


def looks_secret_path(path: str) -> bool:
    """Whether any part of a dotted config path names a secret (``space.api_token.choices``, ``--set db.password``).

    >>> looks_secret_path("space.api_token.choices"), looks_secret_path("space.key_dim.low")
    (True, False)
    """
    return any(looks_secret(part) for part in re.split(r"[.\[\]\s]+", path) if part)


def _env_name_secret(name: str) -> bool:
    # Environment names follow the same rule, plus SECRET anywhere (AZURE_CLIENT_SECRET_VALUE, *_SECRET_*).
    return looks_secret(name) or "secret" in name_words(name)


# --- knowing secret values ----------------------------------------------------------------------------------------

_URL_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/?#\s:@]*:)(?P<secret>[^/?#\s]*)@(?=[^/?#\s@]*(?:[/?#\s]|$))")
# A user name alone, which GitHub and many services accept a token as: https://TOKEN@host/path
_URL_USER = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<secret>[^/?#\s:@]+)@(?=[^/?#\s@]*(?:[/?#\s]|$))")
# Names a URL's user alone often is: not worth masking (short ones, "git", are not masked anyway).
_URL_USER_PLACEHOLDERS = frozenset({"user", "username", "login", "name", "anonymous"})
# name=value in query strings and command lines; the value is a lookahead, so "--set=db.password=x" is seen as
# "--set" = "db.password=x" and then "db.password" = "x".
_ASSIGNMENT = re.compile(r"(?P<name>[\w.\-]+)=(?=(?P<secret>[^\s&#'\"]+))")
# name='value', name="value", name = "value" (keyword arguments in reprs, code, TOML)
_QUOTED_ASSIGNMENT = re.compile(
    r"(?P<name>[\w.\-]+)\s*=\s*(?P<q>['\"])(?P<secret>(?:\\.|(?!(?P=q)).)*)(?P=q)")
# "name": "value" and 'name': 'value' (JSON, Python reprs in exception messages)
_QUOTED_PAIR = re.compile(r"(?P<q>['\"])(?P<name>[\w.\-]+)(?P=q)\s*:\s*(?P<v>['\"])(?P<secret>(?:\\.|(?!(?P=v)).)*)(?P=v)")


def worth_masking(value: str) -> bool:
    """Values shorter than :data:`MIN_SECRET_LENGTH` characters, and words like ``true`` or ``null``, are not masked
    by value: masking them would rewrite ordinary text everywhere. (They are still masked by name.)"""
    return len(value) >= MIN_SECRET_LENGTH and value.strip().lower() not in _TRIVIAL


def _placeholder(text: str) -> bool:
    """``key=value`` in a help message, ``password=***`` already masked: nothing to hide."""
    return text.rstrip(",.;:)]}").strip("<>").lower() in _PLACEHOLDERS


def _url_user_masked(user: str) -> bool:
    """A URL's user name alone is masked by shape when it is worth masking and not a placeholder."""
    return worth_masking(user) and not _placeholder(user) and user.strip("<>").lower() not in _URL_USER_PLACEHOLDERS


def _token_like(text: str) -> bool:
    """Long enough, with letters and digits, to be a token rather than a user name (``mlflow``, ``alice``)."""
    return len(text) >= 16 and any(c.isdigit() for c in text) and any(c.isalpha() for c in text)


def _secrets_in_text(text: str) -> set[str]:
    """URL passwords, token-like URL user names and secret-named assignment values inside ``text``. (A URL user
    name that is not token-like is masked in its URL only: masking ``mlflow`` everywhere would rewrite output.)"""
    found = {m["secret"] for m in _URL_PASSWORD.finditer(text)}
    found |= {user for m in _URL_USER.finditer(text) if _url_user_masked(user := m["secret"]) and _token_like(user)}
    found |= {m["secret"] for m in _ASSIGNMENT.finditer(text) if looks_secret(m["name"])}
    found |= {m["secret"] for m in _QUOTED_ASSIGNMENT.finditer(text) if looks_secret(m["name"])}
    found |= {m["secret"] for m in _QUOTED_PAIR.finditer(text) if looks_secret(m["name"])}
    return {s for s in found if worth_masking(s) and not _placeholder(s)}


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def secret_values(config: Any) -> set[str]:
    """Every secret value in a config mapping (raw YAML or resolved): values of secret-named settings anywhere
    (space constants and categorical choices included), URL passwords and secret query values in any string.

    Walks shared sub-trees once (a YAML alias is not expanded again) and without recursion (no depth limit).

    >>> sorted(secret_values({"space": {"api_token": {"type": "categorical", "choices": ["abcd", "efgh"]}},
    ...                       "tracking": {"uri": "https://me:pw1234@host"}}))
    ['abcd', 'efgh', 'pw1234']
    """
    found: set[str] = set()
    seen: set[int] = set()
    stack: list[tuple[Any, bool]] = [(config, False)]  # (node, under a secret name)
    while stack:
        node, secret = stack.pop()
        if isinstance(node, (Mapping, list, tuple)):
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, Mapping):
                for key, value in node.items():
                    named = isinstance(key, str) and looks_secret(key)
                    if secret and isinstance(key, str) and key in _STRUCTURAL_KEYS:
                        continue
                    stack.append((value, secret or named))
            else:
                stack.extend((value, secret) for value in node)
            continue
        text = _scalar_text(node)
        if text is None:
            continue
        if secret and worth_masking(text):
            found.add(text)
        if isinstance(node, str):
            found |= _secrets_in_text(node)
    return found


def environment_secrets(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Values of secret-looking environment variables (``MLFLOW_TRACKING_PASSWORD``, ``MLFLOW_TRACKING_TOKEN``,
    ``*_TOKEN``, ``*_PASSWORD``, ``*_SECRET*``, ``AWS_SECRET_ACCESS_KEY`` …) and passwords inside any variable's URL
    (``MLFLOW_TRACKING_URI=https://me:pw@host``)."""
    environ = os.environ if environ is None else environ
    return _environment_secrets(tuple(environ.items()))


@functools.lru_cache(maxsize=8)
def _environment_secrets(items: tuple[tuple[str, str], ...]) -> frozenset[str]:
    found: set[str] = set()
    for name, value in items:
        if _env_name_secret(name) and worth_masking(value):
            found.add(value)
        if "://" in value or "=" in value:
            found |= _secrets_in_text(value)
    return frozenset(found)


_remembered: frozenset[str] = frozenset()


def remember_secrets(values: Iterable[Any]) -> None:
    """Add values this process must mask from now on (a loaded config's secrets; in a Ray worker, the driver's).
    Values not :func:`worth_masking` are ignored."""
    global _remembered
    new = {text for v in values if (text := _scalar_text(v)) is not None and worth_masking(text)}
    if not new <= _remembered:
        _remembered = _remembered | new  # rebound, never mutated: the MLflow writer thread reads it concurrently


def known_secrets() -> frozenset[str]:
    """Every secret value this process knows: remembered ones and the environment's."""
    return _remembered | environment_secrets()


# --- masking ------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _value_pattern(values: frozenset[str]) -> re.Pattern | None:
    forms: set[str] = set()
    for value in values:
        # as written, and as it appears once escaped into JSON, a repr or a URL
        forms |= {value, json.dumps(value)[1:-1], repr(value)[1:-1], quote(value, safe="")}
    forms = {f for f in forms if worth_masking(f)}
    if not forms:
        return None
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def _mask_spans(text: str, pattern: re.Pattern, mask: str, keep: Callable[[str], bool] | None = None) -> str:
    spans = [m.span("secret") for m in pattern.finditer(text)
             if m["secret"] and not _placeholder(m["secret"])
             and ("name" not in pattern.groupindex or looks_secret(m["name"]))
             and (keep is None or keep(m["secret"]))]
    if not spans:
        return text
    out, at = [], 0
    for start, end in sorted(spans):
        if start < at:  # nested in a span already masked
            start = at
        if end <= start:
            continue
        out += [text[at:start], mask]
        at = end
    return "".join(out) + text[at:]


def _redact_text(text: str, values: frozenset[str], mask: str) -> str:
    pattern = _value_pattern(values)
    if pattern is not None:
        text = pattern.sub(mask, text)
    if "://" in text:
        text = _mask_spans(text, _URL_PASSWORD, mask)
        if "@" in text:
            text = _mask_spans(text, _URL_USER, mask, _url_user_masked)
    if "=" in text:
        text = _mask_spans(text, _ASSIGNMENT, mask)
        text = _mask_spans(text, _QUOTED_ASSIGNMENT, mask)
    if ":" in text:
        text = _mask_spans(text, _QUOTED_PAIR, mask)
    return text


def _redact(value: Any, name: str | None, values: frozenset[str], mask: str) -> Any:
    if name is not None and value is not None and looks_secret(name):
        return mask
    if isinstance(value, str):
        return _redact_text(value, values, mask)
    if isinstance(value, Mapping):
        return {key: _redact(inner, str(key), values, mask) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(inner, None, values, mask) for inner in value]
    return value


def redact(value: Any, name: str | None = None, *, mask: str = REDACTED) -> Any:
    """``value`` with every credential masked — the one function every exit of hypernas applies.

    Text: known secret values (:func:`known_secrets`), URL passwords and secret-named assignments are masked.
    A mapping: a copy, nested, with secret-named keys' values masked whole and all text masked. A list or tuple:
    a list of its items masked. Anything else is returned as it is. With ``name``, a value whose name looks secret
    is masked whole. ``mask`` replaces what is hidden (:data:`NAME_MASK` for names, where ``*`` is not allowed).

    >>> redact({"api_key": "abc", "uri": "https://me:pw@host/x?token=t0k3n&lr=0.1", "key_dim": 64})
    {'api_key': '***', 'uri': 'https://me:***@host/x?token=***&lr=0.1', 'key_dim': 64}
    """
    return _redact(value, name, known_secrets(), mask)


def redactor(*, mask: str = REDACTED) -> Callable[..., Any]:
    """:func:`redact` bound to the secrets known now: for masking many values in a row (one lookup of the
    environment instead of one per value)."""
    values = known_secrets()
    return lambda value, name=None: _redact(value, name, values, mask)


def redact_text(text: str) -> str:
    """:func:`redact` for text (kept for callers that hold a string)."""
    return redact(text)


# --- exceptions ---------------------------------------------------------------------------------------------------


class RedactedError(Exception):
    """Stands in for a masked exception whose own type cannot be rebuilt from its message alone."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(type_name, message)
        self.type_name, self.message = type_name, message

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"


def redacted_exception(err: BaseException) -> BaseException:
    """A copy of ``err`` safe to leave the process: the same type (a :class:`RedactedError` naming it when the type
    cannot be built from one message, or would show more than it), the masked message, and the masked original
    traceback as a note. Raise it ``from None`` outside the ``except`` block, so no chained context carries the
    original along."""
    cls = type(err)
    message = redact(str(err))
    trace = redact("".join(traceback.format_exception(err)))
    try:
        clean = cls(message)
        text = str(clean)
        if type(clean) is not cls or redact(text) != text or text not in (message, repr(message)):
            raise TypeError(f"{cls.__name__} does not rebuild from its message")
        pickle.loads(pickle.dumps(clean))  # Ray sends it to the driver
    except Exception:  # noqa: BLE001 - any type that does not rebuild cleanly gets the stand-in
        clean = RedactedError(cls.__name__, message)
    clean.add_note(f"Original traceback, secrets masked:\n{trace.rstrip()}")
    return clean


# --- hypernas submit ----------------------------------------------------------------------------------------------


def split_secret_overrides(items: Iterable[str]) -> tuple[list[str], list[str]]:
    """``--set`` items (``key=value``) parted into ``(public, secret)``: secret when the key names a secret or the
    value holds one (a URL password, a known secret value). The secret ones travel in :data:`SECRET_OVERRIDES_ENV`."""
    public, secret = [], []
    for item in items:
        key, _, _ = item.partition("=")
        (secret if looks_secret_path(key) or redact(item) != item else public).append(item)
    return public, secret


def secret_overrides_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The ``--set`` items ``hypernas submit`` passed through :data:`SECRET_OVERRIDES_ENV` (empty when unset)."""
    text = (os.environ if environ is None else environ).get(SECRET_OVERRIDES_ENV)
    if not text:
        return []
    items = json.loads(text)
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"{SECRET_OVERRIDES_ENV} must hold a JSON list of key=value strings")
    return items
