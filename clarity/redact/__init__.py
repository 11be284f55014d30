"""Secret redaction applied to everything before Clarity stores it.

Memories are shared across sessions and people and outlive the tool output they came from, so
a token pasted into a terminal must never reach the store. Hooks call this on every tool
result on the user's critical path, so patterns are precompiled, rules are gated by substring
checks, and long tokens are located with ``bytes.find`` rather than the regex engine: a 10 KB
string without secrets takes a small fraction of a millisecond.

A secret is replaced by ``[REDACTED:<kind>]`` and the text around it is kept (``password=``,
``Bearer ``, ``https://user:``...), so memories stay readable and show what kind of credential
was there. ``kind`` is one of :data:`KINDS`:

- ``api_key``: provider API keys (OpenAI, Anthropic, Stripe, Google, SendGrid, Twilio, Mailgun,
  Heroku, Postman, New Relic, xAI, Groq...) and values of ``*_API_KEY`` assignments.
- ``aws_key``: AWS access key ids and ``aws_secret_access_key`` values.
- ``token``: GitHub/GitLab/Slack/npm/PyPI/Hugging Face/DigitalOcean/Docker Hub/Vault/Doppler/
  Sentry/Grafana/Atlassian/Telegram/Discord bot tokens, ``Bearer``/``Authorization``
  credentials, Slack/Discord webhook paths, values of ``*_TOKEN`` assignments.
- ``private_key``: whole PEM/OpenSSH/PGP private key blocks, age keys, ``*_PRIVATE_KEY`` values.
- ``password``: passwords in URLs and ``curl -u``, ``*_PASSWORD`` and ``pw=`` assignments,
  ``--password``, the password options of ``sshpass -p``, ``mysql -p<pw>``, ``docker login -p``
  and ``redis-cli -a``, and prose ("the staging password is ...").
- ``jwt``: JSON Web Tokens.
- ``secret``: other named secrets (``CLIENT_SECRET``, ``AccountKey``...) and unlabelled
  high-entropy strings.

A recognisable token format wins over its context: ``password = pypi-AgEI...`` is a ``token``.

Judgment calls, chosen to keep recall high without mangling the code and logs Claude reads:

- Values that cannot be secrets survive: placeholders (``<your-password>``, ``${API_KEY}``,
  ``$API_KEY``, ``xxx``, ``***``, ``sk-...``, ``changeme``, ``example``...), booleans and
  null-ish words, values under 4 characters, numbers up to 5 digits (ports, lengths, TTLs:
  ``PASSWORD_MIN_LENGTH=8``), words that merely name a secret (``my_token``) and snake_case
  identifiers. ``changeme`` is a public default, not a secret.
- Names are matched by component and the secret word must come last (give or take ``_PROD``
  and the like), so ``MAX_TOKENS``, ``tokenizer``, ``TOKEN_LIMIT``, ``pad_token``,
  ``PASSWORD_FILE`` and ``secret_name`` are not secrets, while ``PGPASSWORD``, ``apiKey``,
  ``X-Auth-Token`` and ``SECRET_KEY_BASE`` are.
- Unquoted values after an upper-case name (``DB_PASSWORD=x``) are config and redacted. After
  any other name they are often code or prose (``token = params``, ``Token: expired``,
  ``password: str``), so they must look like a credential: a digit, a symbol or inner mixed
  case. ``password=hunter2xyz`` is redacted, ``password: hunter`` is not.
- A ``-p`` flag is a password only for the programs whose ``-p`` takes one (``sshpass``, the
  MySQL family attached as ``-pSECRET``, ``docker login``), and there even a word counts;
  ``docker run -p 80:80``, ``psql -p 5432`` and ``mysql -p db`` (which prompts) are left alone.
- Prose counts when a secret word stands shortly before "is"/"was" and the value looks like a
  credential: "the password is required" is not one.
- ``<X>_KEY`` names a secret for known X (``SECRET_KEY``, ``API_KEY``, ``APP_KEY``); for any
  other X (``STRIPE_KEY``, ``SORT_KEY``) only a value of 16+ characters with a digit does.
  ``PWD=/path`` is the shell's directory, ``Pwd=...`` in a connection string a password.
- An unquoted value runs on past ``)``, ``&``, ``;`` or ``,`` to the next space when more of it
  follows (generated secrets such as Django's ``SECRET_KEY`` contain them), unless what
  follows is another ``name=`` pair.
- Provider prefixes no word contains (``ghp_``, ``github_pat_``, ``AGE-SECRET-KEY-1``...) are
  found even glued to what precedes them; shorter ones (``sk-``, ``AKIA``) must start a token.
- High-entropy strings must be 32+ characters mixing upper case, lower case and digits, and
  not be hex (git SHAs, digests, docker ids, UUIDs, addresses), hash-prefixed (``sha256:``,
  ``sha512-``), part of a URL, an SSH public key or ``data:`` URI, built from word-like pieces
  (identifiers, paths, model ids), or base64 of prose. Hex-only secrets are therefore caught
  only when assigned to a secret-like name.
- ``redact_value`` also redacts the whole string under a key naming a secret (``"password"``,
  ``"Authorization"``, ``"Cookie"``...), placeholders excepted.

The package, by job: :mod:`~clarity.redact.names` (which names and values are secrets),
:mod:`~clarity.redact.providers` (the table of provider token formats),
:mod:`~clarity.redact.assignments` (``NAME=value`` and ``--flag value``),
:mod:`~clarity.redact.contextual` (key blocks, URLs, headers, command lines, prose),
:mod:`~clarity.redact.entropy` (unlabelled random tokens) and :mod:`~clarity.redact.apply` (the
rules in order, and the functions above them).
"""

from __future__ import annotations

from clarity.redact.apply import contains_secret, redact, redact_cut, redact_record, redact_value
from clarity.redact.names import KINDS

__all__ = ["KINDS", "contains_secret", "redact", "redact_cut", "redact_record", "redact_value"]
