"""Tests for clarity.redact: realistic secrets must go, look-alikes must survive untouched.

Fake secrets are generated from a seeded RNG and assembled by concatenation so that secret
scanners do not flag this file, while still having the shape of the real thing.
"""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

from clarity.models import MemoryCreate
from clarity.redact import KINDS, contains_secret, redact, redact_cut, redact_record, redact_value

B62 = string.ascii_letters + string.digits
B64 = B62 + "+/"
B64URL = B62 + "-_"
HEX = "0123456789abcdef"
UPPER_DIGITS = string.ascii_uppercase + string.digits


def rnd(n: int, alphabet: str = B62, seed: int = 0) -> str:
    """Deterministic random-looking string; guarantees upper, lower and digit when possible."""
    rng = random.Random(f"{seed}-{n}-{alphabet}")
    while True:
        s = "".join(rng.choice(alphabet) for _ in range(n))
        need = [
            cls
            for cls in (string.ascii_uppercase, string.ascii_lowercase, string.digits)
            if set(cls) & set(alphabet)
        ]
        if all(set(s) & set(cls) for cls in need):
            return s


PEM_RSA = (
    "-----BEGIN RSA "
    + "PRIVATE KEY-----\n"
    + "\n".join(rnd(64, B64, seed=i) for i in range(5))
    + "\n"
    + rnd(24, B64, 9)
    + "==\n-----END RSA "
    + "PRIVATE KEY-----"
)
PEM_OPENSSH = (
    "-----BEGIN OPENSSH "
    + "PRIVATE KEY-----\n"
    + "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    + "\n".join(rnd(70, B64, seed=10 + i) for i in range(3))
    + "\n-----END OPENSSH "
    + "PRIVATE KEY-----"
)
PEM_EC_ESCAPED = (  # as it appears inside a JSON string
    "-----BEGIN EC "
    + "PRIVATE KEY-----\\n"
    + rnd(64, B64, 20)
    + "\\n"
    + rnd(40, B64, 21)
    + "\\n-----END EC "
    + "PRIVATE KEY-----"
)
PEM_TRUNCATED = "-----BEGIN " + "PRIVATE KEY-----\n" + rnd(64, B64, 30) + "\n" + rnd(64, B64, 31)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    + "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
    + rnd(43, B64URL, 40)
)
AWS_SECRET = rnd(40, B64, 50)

# (id, text before, secret, text after, kind): redact(before + secret + after) must equal
# before + "[REDACTED:kind]" + after, which also proves the surrounding shape is kept.
SECRETS: list[tuple[str, str, str, str, str]] = [
    ("openai_legacy", "OPENAI_API_KEY=", "sk-" + rnd(48, seed=1), "", "api_key"),
    (
        "openai_project",
        "key is ",
        "sk-proj-" + rnd(64, B64URL, 2) + "T3Blbk" + rnd(40, B64URL, 3),
        " ok",
        "api_key",
    ),
    ("anthropic", 'export ANTHROPIC_API_KEY="', "sk-ant-api03-" + rnd(93, B64URL, 4) + "AA", '"', "api_key"),
    ("aws_access_key_id", "aws_access_key_id = ", "AKIA" + rnd(16, UPPER_DIGITS, 5), "\n", "aws_key"),
    ("aws_sts_key_id", '{"AccessKeyId": "', "ASIA" + rnd(16, UPPER_DIGITS, 6), '"}', "aws_key"),
    ("aws_secret_assignment", "aws_secret_access_key = ", AWS_SECRET, "\n", "aws_key"),
    ("aws_secret_env", "AWS_SECRET_ACCESS_KEY=", AWS_SECRET, "", "aws_key"),
    ("github_ghp", "git remote set-url origin x; GH=", "ghp_" + rnd(36, seed=7), "", "token"),
    ("github_gho", "oauth: ", "gho_" + rnd(36, seed=8), "", "token"),
    ("github_ghu", "user-to-server ", "ghu_" + rnd(36, seed=9), " issued", "token"),
    (
        "github_ghs_in_url",
        "https://x-access-token:",
        "ghs_" + rnd(36, seed=10),
        "@github.com/org/repo.git",
        "token",
    ),
    ("github_ghr", "refresh=", "ghr_" + rnd(76, seed=11), "", "token"),
    ("github_fine_grained", "token ", "github_pat_" + rnd(22, seed=12) + "_" + rnd(59, seed=13), "", "token"),
    ("gitlab", "PRIVATE-TOKEN: ", "glpat-" + rnd(20, B64URL, 14), "", "token"),
    ("slack_bot", "SLACK_BOT=", "xoxb-" + "1234567890123-1234567890123-" + rnd(24, seed=15), "", "token"),
    (
        "slack_user",
        "using ",
        "xoxp-" + "1234567890-1234567890123-1234567890123-" + rnd(32, HEX, 16),
        ".",
        "token",
    ),
    ("slack_app", "app token ", "xapp-1-A0123456789-1234567890123-" + rnd(64, HEX, 17), "", "token"),
    (
        "slack_webhook",
        "curl -X POST https://hooks.slack.com/services/",
        "T0" + rnd(9, UPPER_DIGITS, 18) + "/B0" + rnd(9, UPPER_DIGITS, 19) + "/" + rnd(24, seed=20),
        " -d @msg.json",
        "token",
    ),
    ("stripe_live", "stripe.api_key = '", "sk_live_" + rnd(99, seed=21), "'", "api_key"),
    ("stripe_restricted", "", "rk_live_" + rnd(99, seed=22), " (restricted)", "api_key"),
    ("stripe_test", "Stripe::Key ", "sk_test_" + rnd(24, seed=23), "", "api_key"),
    (
        "google_api_key",
        "https://maps.googleapis.com/maps/api/geocode/json?address=x&key=",
        "AIza" + rnd(35, B64URL, 24),
        "",
        "api_key",
    ),
    ("google_oauth", "access: ", "ya29." + rnd(120, B64URL, 25), "", "token"),
    ("twilio_api_key", "sid ", "SK" + rnd(32, HEX, 26), " created", "api_key"),
    ("twilio_auth_token", "TWILIO_AUTH_TOKEN=", rnd(32, HEX, 27), "", "token"),
    ("sendgrid", "SENDGRID=", "SG." + rnd(22, B64URL, 28) + "." + rnd(43, B64URL, 29), "", "api_key"),
    ("npm_token", "//registry.npmjs.org/:_authToken=", "npm_" + rnd(36, seed=30), "", "token"),
    ("pypi_token", "password = ", "pypi-AgEIcHlwaS5vcmc" + rnd(140, B64URL, 31), "", "token"),
    ("huggingface", "HF hub login with ", "hf_" + rnd(34, string.ascii_letters, 32), "", "token"),
    (
        "azure_connection_string",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=",
        rnd(86, B64, 33) + "==",
        ";EndpointSuffix=core.windows.net",
        "secret",
    ),
    (
        "bearer_header",
        "curl -H 'Authorization: Bearer ",
        rnd(40, B64URL, 34),
        "' https://api.example.com",
        "token",
    ),
    ("basic_auth_header", "Authorization: Basic ", "YWRtaW46czNjcjN0UGFzcw==", "", "token"),
    ("x_api_key_header", "-H 'X-API-Key: ", rnd(32, seed=35), "'", "api_key"),
    ("url_basic_auth", "https://user:", "pa55w0rd", "@host/x", "password"),
    (
        "postgres_url_password",
        "DATABASE_URL=postgres://app:",
        "S3cr3t-" + rnd(10, seed=36),
        "@db.internal:5432/app",
        "password",
    ),
    ("redis_url_password_only", "redis://:", "r3dis" + rnd(12, seed=37), "@cache:6379/0", "password"),
    ("jwt", "id_token=", JWT, "", "jwt"),
    ("jwt_bearer", "Authorization: Bearer ", JWT, "", "jwt"),
    ("pem_rsa", "key:\n", PEM_RSA, "\ndone", "private_key"),
    ("pem_openssh", "$ cat ~/.ssh/id_ed25519\n", PEM_OPENSSH, "\n$ ", "private_key"),
    (
        "pem_in_json_string",
        '{"private_key": "',
        PEM_EC_ESCAPED,
        '\\n", "client_email": "x@y.iam"}',
        "private_key",
    ),
    ("pem_truncated", "output:\n", PEM_TRUNCATED, "\n... (truncated)", "private_key"),
    ("env_export_password", "export DB_PASSWORD=", "hunter2xyz", "\n", "password"),
    ("password_assignment", "password=", "hunter2xyz", "", "password"),
    ("yaml_password", '  DB_PASSWORD: "', "Tr0ub4dor&3", '"\n', "password"),
    ("json_password", '{"user": "bob", "password": "', "correct horse battery", '"}', "password"),
    ("escaped_json_password", '{\\"password\\": \\"', "s3cr3t!", '\\"}', "password"),
    ("pgpassword", "PGPASSWORD=", "pg_" + rnd(16, seed=38), " psql -h db", "password"),
    ("cli_password_flag", "mycli login --password ", "hunter2xyz", " --user bob", "password"),
    ("cli_api_key_flag_eq", "tool --api-key=", rnd(24, seed=39), "", "api_key"),
    ("jwt_secret_env", "JWT_SECRET=", rnd(24, B64, 40), "", "secret"),
    ("client_secret_yaml", "client_secret: ", rnd(24, B64URL, 41), "", "secret"),
    ("python_literal", 'connect(host="db", password="', "Sup3rS3cret", '")', "password"),
    ("camel_case_json", '{"accessToken": "', rnd(30, seed=42), '"}', "token"),
    ("query_param_token", "GET /callback?code=abc&access_token=", rnd(32, seed=43), "&state=xyz", "token"),
    ("high_entropy_bare", "the value was ", rnd(40, B64, 44), " yesterday", "secret"),
    ("high_entropy_urlsafe", "cookie ", rnd(48, B64URL, 45), "", "secret"),
    ("curl_user_password", "curl -u admin:", "S3cretP4ss", " https://api.example.com", "password"),
    ("k8s_secret_base64", "data:\n  password: ", "cGFzc3dvcmQxMjM=", "\n", "password"),
    (
        "docker_config_auth",
        '{"auths": {"https://index.docker.io/v1/": {"auth": "',
        "dXNlcjpwYXNzd29yZA==",
        '"}}}',
        "token",
    ),
    ("context_kind_refined", "password = ", "ghp_" + rnd(36, seed=46), "", "token"),
    ("non_ascii_text", "Ünïcödé — clé: ", "ghp_" + rnd(36, seed=47), " fin", "token"),
    ("non_ascii_high_entropy", "mot de passe généré : ", rnd(40, B64, 48), "", "secret"),
    ("unicode_lowercase_changes_length", "İstanbul DB_PASSWORD=", "hunter2xyz", "", "password"),
    # Command-line password options and passwords in prose.
    ("sshpass_quoted", "sshpass -p '", rnd(14, seed=80), "' ssh deploy@host", "password"),
    ("sshpass_attached", "sshpass -p", rnd(14, seed=81), " rsync -a x y:", "password"),
    ("mysql_attached", "mysql -u root -p", rnd(12, seed=82), " mydb", "password"),
    ("mysql_word_password", "mysqldump -uroot -p", "SECRET", " db > dump.sql", "password"),
    ("mysql_long_flag", "mysql --user=root --password=", "SECRET", " db", "password"),
    ("docker_login_p", "docker login -u bob -p ", rnd(16, seed=83), " ghcr.io", "password"),
    ("redis_cli_a", "redis-cli -h cache -a ", rnd(16, seed=84), " ping", "password"),
    ("prose_password", "the staging password is ", "Xk9#mQ2$vLp7", "", "password"),
    ("prose_password_for", "The password for the prod db was ", "hunter2xyz", ", now rotated", "password"),
    ("pw_assignment", "pw=", rnd(12, seed=85), "", "password"),
    ("passwd_colon_then_words", "passwd: ", "Vq6tBUDgoE!8Hu7I", " was rejected", "password"),
    ("odbc_pwd", "Server=db;Uid=sa;Pwd=", rnd(12, seed=86), ";", "password"),
    ("django_key_parens", "DJANGO_SECRET_KEY=", "k9#)x&m2(w" + rnd(30, seed=87), "", "secret"),
    ("django_key_yaml", "SECRET_KEY: ", "$)k9#x&m2(w" + rnd(30, seed=88), "\nDEBUG: false", "secret"),
    ("django_key_quoted_paren", "SECRET_KEY = '", ")k9#x&m2(w" + rnd(30, seed=89), "'", "secret"),
    ("env_key_unknown_prefix", "STRIPE_KEY=", rnd(24, seed=90), "", "secret"),
    ("datadog_app_key", "DD_APP_KEY=", rnd(40, HEX, 91), "", "secret"),
    # More provider formats.
    ("mailgun", "api ", "key-" + rnd(32, HEX, 92), "", "api_key"),
    ("heroku", "HEROKU ", "HRKU-AA" + rnd(58, B64URL, 93), "", "api_key"),
    ("digitalocean_oauth", "", "doo_v1_" + rnd(64, HEX, 94), "", "token"),
    ("docker_hub_pat", "", "dckr_pat_" + rnd(27, B64URL, 95), "", "token"),
    ("vault_token", "VAULT_TOKEN is ", "hvs." + rnd(90, B64URL, 96), "", "token"),
    ("telegram_bot", "https://api.telegram.org/bot", "123456789:AA" + rnd(33, B64URL, 97), "/getMe", "token"),
    (
        "discord_bot",
        "bot.run('",
        "MTk4NjIyNDgzNDcxOTI1MjQ4." + rnd(6, B64URL, 98) + "." + rnd(38, B64URL, 99),
        "')",
        "token",
    ),
    ("azure_ad_secret", "secret ", "abc8Q~" + rnd(34, seed=100), " ok", "secret"),
    (
        "azure_sas_sig",
        "https://a.blob.core.windows.net/c?sv=2021&sig=",
        rnd(32, B62, 101) + "%3D",
        "&se=1",
        "secret",
    ),
    ("age_secret_key", "", "AGE-SECRET-KEY-1" + rnd(58, UPPER_DIGITS, 102), "", "private_key"),
    ("sentry_user_token", "", "sntryu_" + rnd(64, HEX, 103), "", "token"),
    ("new_relic", "", "NRAK-" + rnd(27, UPPER_DIGITS, 104), "", "api_key"),
    ("glued_distinct_prefix", "session-", "ghp_" + rnd(36, seed=105), "", "token"),
]

# (id, text): redact(text) must return text unchanged.
LOOKALIKES: list[tuple[str, str]] = [
    ("sk_in_words", "see task-sk-learn and scikit-learn (sklearn) docs; sk-learn is a misspelling"),
    ("sk_kebab_identifier", "class=sk-navigation-drawer-collapsed-state-wrapper"),
    ("token_in_prose", "the token limit is 2000 and each token costs money"),
    ("password_in_prose", "reset your password here if you forgot your password."),
    ("password_min_length", "PASSWORD_MIN_LENGTH=8"),
    ("max_tokens", "max_tokens=4096\nMAX_TOKENS: 4096\nTOKEN_TTL=86400"),
    ("token_colon_prose", "Token: expired. Password: required."),
    ("git_sha", "commit 3f2a9c1b7e4d5f60718293a4b5c6d7e8f9012345 (HEAD -> main)"),
    ("short_sha", "fixed in a1b2c3d, see also 9f8e7d6"),
    ("uuid", "request_id=123e4567-e89b-12d3-a456-426614174000"),
    ("image_digest", "image: ghcr.io/org/app@sha256:" + rnd(64, HEX, 60)),
    (
        "sri_hash",
        '<script integrity="sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC"></script>',
    ),
    ("npm_integrity", '"integrity": "sha512-' + rnd(86, B64, 61) + '=="'),
    ("nix_sri_hash", 'hash = "sha256-' + rnd(43, B64, 62) + '=";'),
    ("sha256_lockfile", "--hash=sha256:" + rnd(64, HEX, 63)),
    ("docker_image_id", "REPOSITORY  TAG  IMAGE ID      SIZE\npython      3.11 4f2e8c1a9b3d  1.01GB"),
    ("angle_placeholder", "password=<your-password>"),
    ("braced_env_ref", "API_KEY=${API_KEY}"),
    ("env_ref", "API_KEY=$API_KEY"),
    ("github_actions_secret", "GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}"),
    ("xxx_placeholder", "token: xxx\napi_key: '****'"),
    ("changeme_placeholder", "DB_PASSWORD=changeme"),
    ("plain_url", "clone https://github.com/org/repo and open https://docs.python.org/3/library/re.html"),
    ("url_without_password", "postgres://localhost:5432/db and ssh://git@github.com/org/repo.git"),
    ("akia_too_short", "the string AKIAEXAMPLE is not a key"),
    ("snake_case_identifier", "def test_redact_value_handles_nested_tool_response_payloads_correctly():"),
    (
        "camel_case_identifier",
        "AbstractSingletonProxyFactoryBeanV2Impl extends HTTPServerRequestHandler2ForLocalhostTesting",
    ),
    ("low_entropy_base64", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ("pytest_output", "tests/test_redact.py::test_secret_is_redacted[github_fine_grained] PASSED  [ 42%]"),
    (
        "stack_trace",
        'File "/usr/lib/python3.11/asyncio/events.py", line 80\n<Handle object at 0x7f3a2b1c4d5e>',
    ),
    ("code_env_lookup", 'api_key = os.environ["OPENAI_API_KEY"]\ntoken = get_token()'),
    ("code_fstring_bearer", 'headers = {"Authorization": f"Bearer {token}"}'),
    (
        "code_annotation",
        "def login(username: str, password: str) -> Token:\n    password: Optional[str] = None",
    ),
    ("code_kwargs_echo", "client = Client(api_key=api_key, token=self.token, password=password)"),
    ("css_color", "color: #1a2b3c; background: #FFAA00;"),
    ("version_strings", "numpy==1.26.4 requests>=2.31.0 v2.31.0-rc.1+build.5"),
    ("file_path", "/home/user/projects/clarity/src/clarity/hooks/PostToolUseHandler.py"),
    ("base64_of_prose", "data: SGVsbG8gd29ybGQsIHRoaXMgaXMgYSB0ZXN0IG1lc3NhZ2U="),
    ("mysql_prompt_flag", "mysql -u root -p mydb && docker run -p 8080:80 nginx && psql -p 5432 db"),
    ("password_qualified_names", "PASSWORD_FILE=/run/secrets/db\n--token-limit 2000\nsecretName: tls-cert"),
    ("bearer_prose", "Bearer token authentication is supported; use Bearer authentication."),
    ("tokenizer", 'tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")'),
    ("password_stdin", "echo $CR_PAT | docker login ghcr.io --password-stdin -u bob"),
    ("aws_arn", "arn:aws:iam::123456789012:role/service-role/MyLambdaExecutionRole"),
    (
        "google_docs_url",
        "https://docs.google.com/document/d/1aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789AbCdEf/edit",
    ),
    ("eyj_in_text", "a JWT starts with eyJ but this is not one"),
    (
        "ssh_public_key",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host",
    ),
    (
        "data_uri",
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    ),
    (
        "hf_model_ids",
        'from_pretrained("Qwen/Qwen3-Next-80B-A3B-Instruct"), "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"',
    ),
    ("torch_header_path", "torch/include/ATen/ops/_fft_c2c_ops.h and Qwen2_5OmniToken2WavBigVGANModel"),
    (
        "wheel_record_line",
        "torch/include/ATen/ops/_fft_c2c_ops.h,sha256=hgnrV6Gl4N7Yq-EjG8lhd79E1hMHRQqtlVkxAzEqPE8,2227",
    ),
    ("docker_user_flag", "docker run -u 1000:1000 img && git push -u origin main"),
    (
        "ml_special_tokens",
        'pad_token="<pad>", cls_token: If True, prepend a CLS token. visual_token_features = feats',
    ),
    ("type_annotations", "self._dep_token: ProxyValue | None = None\nprivate_key: PKCS7PrivateKeyTypes,"),
    ("docstring_args", "api_key: API key of the serverless space.\nclient_secret: The OAuth client secret."),
    ("masked_examples", 'OPENAI_API_KEY=sk-... ANTHROPIC_API_KEY=sk-ant-... {"HF_TOKEN": "hf_***"}'),
    ("git_log", "3f2a9c1 (HEAD -> main) Fix token counting\na1b2c3d Bump qdrant-client to 1.15.1"),
    ("auth_setting_words", "auth: basic\nauth = None\nauth=auth"),
    ("shell_pwd", "PWD=/home/user/projects/clarity\nOLDPWD=/home/user"),
    ("non_secret_keys", "SORT_KEY=created_at\nPRIMARY_KEY=id\nCACHE_KEY=user:1234567890:profile"),
    (
        "password_prose_words",
        "the password is required, the token is valid for 2 hours and the secret is out",
    ),
    ("password_prose_url", "the password reset link is https://example.com/reset?step=2"),
    ("token_prose_capitalised", "token: GitHub Actions provides it"),
    ("sshpass_from_file", "sshpass -f ~/.pw ssh host && sshpass -e ssh host"),
    ("query_other_params_kept", "GET /cb?user=bob&state=xyz&page=2"),
    ("code_call_kwargs", "login(password=get_password(), token=fetch_token())"),
]


def _secret_params() -> list[Any]:
    return [
        pytest.param(before, secret, after, kind, id=case_id)
        for case_id, before, secret, after, kind in SECRETS
    ]


@pytest.mark.parametrize(("before", "secret", "after", "kind"), _secret_params())
def test_secret_is_redacted_and_shape_kept(before: str, secret: str, after: str, kind: str) -> None:
    text = before + secret + after
    assert redact(text) == f"{before}[REDACTED:{kind}]{after}"
    assert contains_secret(text)


@pytest.mark.parametrize("text", [pytest.param(text, id=case_id) for case_id, text in LOOKALIKES])
def test_lookalike_survives(text: str) -> None:
    assert redact(text) == text
    assert not contains_secret(text)


@pytest.mark.parametrize(
    "text",
    [pytest.param(before + secret + after, id=case_id) for case_id, before, secret, after, _ in SECRETS]
    + [pytest.param(text, id=case_id) for case_id, text in LOOKALIKES],
)
def test_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


def test_case_counts_meet_requirement() -> None:
    assert len(SECRETS) >= 30 and len(LOOKALIKES) >= 30
    assert len({c[0] for c in SECRETS}) == len(SECRETS)
    assert len({c[0] for c in LOOKALIKES}) == len(LOOKALIKES)
    assert {c[4] for c in SECRETS} == KINDS


def test_documented_examples_keep_shape() -> None:
    assert redact("password=hunter2xyz") == "password=[REDACTED:password]"
    assert redact("https://user:pa55w0rd@host/x") == "https://user:[REDACTED:password]@host/x"
    token = rnd(40, B64URL, 70)
    assert redact(f"Authorization: Bearer {token}") == "Authorization: Bearer [REDACTED:token]"


def test_several_secrets_in_one_text() -> None:
    gh = "ghp_" + rnd(36, seed=71)
    text = f"GH={gh}\nexport DB_PASSWORD=hunter2xyz\ncommit 3f2a9c1b7e4d5f60718293a4b5c6d7e8f9012345\n"
    assert redact(text) == (
        "GH=[REDACTED:token]\nexport DB_PASSWORD=[REDACTED:password]\n"
        "commit 3f2a9c1b7e4d5f60718293a4b5c6d7e8f9012345\n"
    )


def test_hook_payload_is_redacted_recursively() -> None:
    token = rnd(40, B64URL, 72)
    key = "sk-proj-" + rnd(60, B64URL, 73)
    payload = {
        "session_id": "123e4567-e89b-12d3-a456-426614174000",
        "tool_name": "Bash",
        "tool_input": {"command": f"curl -H 'Authorization: Bearer {token}' https://api.example.com"},
        "tool_response": {"stdout": f"OPENAI_API_KEY={key}\nok", "stderr": "", "interrupted": False},
        "exit_code": 0,
        "extra": [None, 1.5, True, ["nested", {"password": "hunter2xyz"}]],
    }
    original = repr(payload)
    out = redact_value(payload)
    assert out == {
        "session_id": "123e4567-e89b-12d3-a456-426614174000",
        "tool_name": "Bash",
        "tool_input": {"command": "curl -H 'Authorization: Bearer [REDACTED:token]' https://api.example.com"},
        "tool_response": {
            "stdout": "OPENAI_API_KEY=[REDACTED:api_key]\nok",
            "stderr": "",
            "interrupted": False,
        },
        "exit_code": 0,
        "extra": [None, 1.5, True, ["nested", {"password": "[REDACTED:password]"}]],
    }
    assert repr(payload) == original, "input must not be mutated"


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("password", "password"),
        ("passwd", "password"),
        ("secret", "secret"),
        ("token", "token"),
        ("api_key", "api_key"),
        ("apiKey", "api_key"),
        ("access_key", "secret"),
        ("private_key", "private_key"),
        ("client_secret", "secret"),
        ("Authorization", "token"),
        ("Cookie", "token"),
        ("X-Auth-Token", "token"),
    ],
)
def test_secret_named_key_redacts_whole_value(key: str, kind: str) -> None:
    # "Bearer abc" or a short word would not look secret on its own; the key says it is.
    assert redact_value({key: "Bearer abc", "note": "ok"}) == {key: f"[REDACTED:{kind}]", "note": "ok"}


@pytest.mark.parametrize(
    "key",
    ["max_tokens", "token_count", "password_min_length", "tokenizer", "secret_name", "sort_key", "stripeKey"],
)
def test_qualified_keys_are_not_secret(key: str) -> None:
    assert redact_value({key: "bert-base"}) == {key: "bert-base"}


def test_secret_key_with_placeholder_or_non_str_value() -> None:
    assert redact_value({"password": "", "token": "${TOKEN}", "api_key": None, "secret": 42}) == {
        "password": "",
        "token": "${TOKEN}",
        "api_key": None,
        "secret": 42,
    }


@pytest.mark.parametrize("value", [0, 42, -1.5, True, False, None, b"bytes"])
def test_non_str_values_pass_through(value: Any) -> None:
    assert redact_value(value) is value
    assert redact_value([value]) == [value]


def test_tuples_and_keys() -> None:
    gh = "ghp_" + rnd(36, seed=74)
    assert redact_value((gh, 1)) == ("[REDACTED:token]", 1)
    assert redact_value({gh: 1}) == {"[REDACTED:token]": 1}


def test_empty_and_short_text() -> None:
    assert redact("") == ""
    assert redact("ok") == "ok"
    assert not contains_secret("")


def test_redact_cut_redacts_the_whole_text_before_cutting() -> None:
    token = "ghp_" + rnd(36, seed=110)
    for cut in range(5, 60):  # wherever the cut falls inside the token, no part of it is kept
        text = "x" * (cut - 5) + " " + token + " tail"
        kept = redact_cut(text, cut + 10)
        assert token[4:14] not in kept and token[-10:] not in kept, (cut, kept)
    long = "lorem ipsum " * 50_000 + token  # 600 KB: only a window is redacted, same result
    assert redact_cut(long, 500) == redact(long)[:499] + "…"
    assert redact_cut("short text", 500) == "short text"


def test_redact_cut_of_a_long_prefix_full_of_secrets_is_the_same_as_redacting_it_all() -> None:
    # 200 private keys (~80 KB) become 200 short markers: the window grows until it reaches
    # past the cut, and what is kept is exactly the start of the whole text redacted.
    text = (PEM_RSA + "\n") * 200 + "AWS_SECRET_ACCESS_KEY=" + AWS_SECRET + " " + "tail " * 1000
    whole = redact(text)
    assert AWS_SECRET not in whole
    for limit in (100, 5000, len(whole) - 10):
        assert redact_cut(text, limit) == whole[: limit - 1] + "…"


def test_redact_record_covers_every_string_field_and_cuts_after() -> None:
    token = "ghp_" + rnd(36, seed=111)
    record = MemoryCreate(
        content=f"use {token}",
        tags=[token, f"cmd:DB_PASSWORD={rnd(12, seed=112)}", "plain"],
        metadata={token: {"nested": [f"password={rnd(12, seed=113)}"]}},
        session_id=f"s {token}",
    )
    clean = redact_record(record, max_chars={"tags": 20})
    dumped = clean.model_dump_json()
    assert token[4:] not in dumped and rnd(12, seed=112) not in dumped and rnd(12, seed=113) not in dumped
    assert clean.tags == ["[REDACTED:token]", "cmd:DB_PASSWORD=[RE…", "plain"]
    assert clean.memory_type == record.memory_type and clean.scope == "project"
    assert redact_record(MemoryCreate(content="nothing secret here")).content == "nothing secret here"


def test_a_key_of_unknown_kind_is_secret_only_with_a_secret_looking_value() -> None:
    value = rnd(24, seed=114)
    assert redact_value({"stripeKey": value, "sortKey": "created_at"}) == {
        "stripeKey": "[REDACTED:secret]",
        "sortKey": "created_at",
    }
