"""Credentials never reach MLflow, Parquet, the decision log, Ray's files or the console; trials still get real
values."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import pytest
import yaml

from search import run_experiment
from search.cli import main
from search.config import ConfigError, load_config
from search.redaction import (
    REDACTED,
    SECRET_OVERRIDES_ENV,
    RedactedError,
    environment_secrets,
    looks_secret,
    redact,
    redact_text,
    redacted_exception,
    remember_secrets,
    secret_overrides_from_env,
    secret_values,
    split_secret_overrides,
)
from tests.helpers import tiny_config

SECRET = "s3cr3t-value"

# The real experiment's secrets: a secret-named space constant, a secret-named categorical's only choice, and a
# value known only from the environment (MLFLOW_TRACKING_TOKEN) that the trainer's own code holds.
CONST_SECRET = "c0nst-Secret-41a7"
CHOICE_SECRET = "ch0ice-Secret-9b2e"
ENV_SECRET = "env-Secret-77c1"


def leaky_train(spec, reporter):
    """A trainer whose failure message quotes every credential it holds."""
    reporter.report(1, {"val_loss": spec.params["x"]})
    raise RuntimeError(f"cannot reach https://u:{spec.params['api_token']}@host?token={spec.params['db_password']} "
                       f"with key {ENV_SECRET}")


leaky_train.metrics = ("val_loss",)


# --- names ------------------------------------------------------------------------------------------------------

SECRET_NAMES = [
    "api_key", "apiKey", "APIKEY", "ApiKey", "API_KEY", "x-api-key", "passphrase", "passPhrase", "pass_phrase",
    "auth", "basic_auth", "authToken", "auth_token", "credential", "credentials", "aws_credentials", "token",
    "GITHUB_TOKEN", "hf_token", "token2", "password", "db_password", "db.password", "dbPassword", "DBPASSWORD",
    "passwd", "secret", "client_secret", "clientSecret", "AWS_SECRET_ACCESS_KEY", "secret_key", "secretKey",
    "access_key", "private_key", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "Authorization",
    "token_value", "oauth", "space.api_token",
    # lists of credentials, Rails' and PEM-named keys, "pwd" after another word, credential keys
    "api_keys", "apiKeys", "API_KEYS", "ssh_keys", "access_tokens", "auth_tokens", "secret_key_base",
    "SECRET_KEY_BASE", "private_key_pem", "api_key_value", "db_pwd", "DB_PWD", "MYSQL_PWD", "user_pwd", "adminPwd",
    "ssh_key", "encryption_key", "signing_key", "space.api_keys",
]
PLAIN_NAMES = [
    "key_dim", "num_keys", "keys", "tokenizer", "tokenizer_name", "keyword", "keywords", "monkey", "monkey_patch",
    "author", "authors", "author_name", "authority", "max_tokens", "num_tokens", "token_count", "key_size",
    "sort_keys", "pad_token", "eos_token", "sort_key", "rng_key", "secretary", "password_hash", "auth_mode",
    "RAY_AUTH_MODE", "SSH_AUTH_SOCK", "PWD", "OLDPWD", "lr", "kernel_size", "width", "depth", "hotkey", "turkey",
    "passage", "bypass", "AWS_ACCESS_KEY_ID",
    # collections and counts of keys and tokens, the bare working directory, attention and embedding keys
    "tokens", "missing_keys", "unexpected_keys", "ignore_keys", "max_new_tokens", "prompt_tokens", "special_tokens",
    "register_tokens", "pwd", "query_key", "value_key", "attn_key", "attention_key", "embed_key", "embedding_key",
    "key_proj", "kv_key", "qkv_key", "head_key", "sort_key_value", "queryKey",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_names_that_hold_secrets(name):
    assert looks_secret(name)


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_names_that_do_not(name):
    assert not looks_secret(name)


def test_redact_by_name_keeps_ordinary_params():
    params = {"api_key": "abc", "key_dim": 64, "num_keys": 8, "tokenizer": "bpe", "nested": {"password": "x"}}
    assert redact(params) == {"api_key": REDACTED, "key_dim": 64, "num_keys": 8, "tokenizer": "bpe",
                              "nested": {"password": REDACTED}}


# --- values -----------------------------------------------------------------------------------------------------


def test_urls_query_strings_and_assignments():
    assert redact_text("http://me:pw@host:5000/x and s3://b") == "http://me:***@host:5000/x and s3://b"
    assert redact("https://u:p@ss@h/x?token=t0k3n&lr=0.1&key=k&password=hunter2") == \
        "https://u:***@h/x?token=***&lr=0.1&key=***&password=***"
    assert redact("hypernas run x.yaml --set=space.api_token=abc --set=budget.trials=3") == \
        "hypernas run x.yaml --set=space.api_token=*** --set=budget.trials=3"
    assert redact("""{"api_key": "zz", "key_dim": "64"} and {'passphrase': 'open'}""") == \
        """{"api_key": "***", "key_dim": "64"} and {'passphrase': '***'}"""
    assert redact("key_dim=64 num_keys=8 tokenizer=bpe") == "key_dim=64 num_keys=8 tokenizer=bpe"
    assert redact("expects key=value, e.g. budget.trials=8") == "expects key=value, e.g. budget.trials=8"
    assert redact({"a": {"password": "x", "uri": "https://u:p@h"}}) == {"a": {"password": "***", "uri": "https://u:***@h"}}


@pytest.mark.parametrize("text, masked", [
    # a token as a URL's user name: masked when worth masking and not a placeholder
    ("git clone https://ghp_Tok3nValue42xyz@github.com/o/r.git", "git clone https://***@github.com/o/r.git"),
    ("postgresql://mlflow@db.example.com/mlflow", "postgresql://***@db.example.com/mlflow"),
    ("https://user@host/x and ssh://git@github.com/x", "https://user@host/x and ssh://git@github.com/x"),
    ("https://***@host/x", "https://***@host/x"),
    ("https://user:pw-1234@host/x", "https://user:***@host/x"),  # user:password keeps the user
    ("see https://example.com/@alice/x", "see https://example.com/@alice/x"),  # an @ in the path is no userinfo
    # quoted assignments (keyword arguments in reprs, code, TOML), for secret names only
    ("Client(api_key='abc123', key_dim=64)", "Client(api_key='***', key_dim=64)"),
    ('Client(api_key="abc123", name="run-1")', 'Client(api_key="***", name="run-1")'),
    ('password = "hunter22"', 'password = "***"'),
    ("db_pwd='x y z' and secret_key_base = 'a1b2c3'", "db_pwd='***' and secret_key_base = '***'"),
    (r"api_key='it\'s-Secret' lr='0.1'", "api_key='***' lr='0.1'"),
    ("num_keys='abcd' query_key='rope' password=''", "num_keys='abcd' query_key='rope' password=''"),
    ("if api_key == 'value':", "if api_key == 'value':"),
])
def test_masking_by_shape(text, masked):
    assert redact(text) == masked


def test_url_user_names_and_quoted_assignments_become_known_values():
    # a token-like URL user name is known by value; a plain user name ("mlflow") is masked in its URL only
    assert secret_values({"a": "https://ghp_Tok3nValue42xyz@github.com/x", "b": "postgresql://mlflow@db/x",
                          "c": "Client(api_key='quoted-Secret-1')"}) == {"ghp_Tok3nValue42xyz", "quoted-Secret-1"}


def test_attention_keys_keep_their_values_for_replay():
    params = {"query_key": 64, "value_key": "v", "attn_key": "rope", "kv_key": 8, "key_proj": "linear",
              "embed_key": "tok", "max_new_tokens": 32, "api_keys": ["k-1234", "k-5678"], "db_pwd": "pw"}
    assert redact(params) == {**params, "api_keys": REDACTED, "db_pwd": REDACTED}


def test_known_values_are_masked_wherever_they_appear():
    remember_secrets(["Zq-known-8812", 'q"uo/te s3cret', "abc", "false"])  # the last two: too short, too common
    text = 'boom: Zq-known-8812 in "Zq-known-8812" at https://h/?q=Zq-known-8812 (abc, false)'
    assert redact(text) == 'boom: *** in "***" at https://h/?q=*** (abc, false)'
    # as JSON, a repr and a URL write it
    assert redact(json.dumps({"msg": 'q"uo/te s3cret'})) == json.dumps({"msg": "***"})
    assert redact(repr(['q"uo/te s3cret'])) == "['***']"
    assert redact("https://h/?q=q%22uo%2Fte%20s3cret&x=1") == "https://h/?q=***&x=1"


def test_secret_values_of_a_config():
    config = {
        "tracking": {"uri": "https://me:uri-pw-55@mlflow.example/"},
        "data": {"path": "s3://bucket/x.parquet?X-Amz-Signature=sig&token=q-tok-99"},
        "space": {
            "api_token": "const-tok-11",
            "db_password": {"type": "categorical", "choices": ["choice-pw-22", "choice-pw-33"]},
            "key_dim": {"type": "categorical", "choices": [32, 64]},
            "credentials": {"user": "me-too", "nested": ["deep-secret-44"]},
        },
    }
    assert secret_values(config) == {"uri-pw-55", "q-tok-99", "const-tok-11", "choice-pw-22", "choice-pw-33",
                                     "me-too", "deep-secret-44"}


def test_secret_values_walk_shared_subtrees_once():
    node: dict = {"password": "laugh-secret"}
    for _ in range(64):  # 2**64 paths if every alias were expanded again
        node = {"a": node, "b": node}
    assert secret_values(node) == {"laugh-secret"}


def test_environment_secrets(monkeypatch):
    env = {"MLFLOW_TRACKING_PASSWORD": "env-pw-1", "MY_SERVICE_TOKEN": "env-tok-2", "AZURE_CLIENT_SECRET_V2": "az-333",
           "AWS_SECRET_ACCESS_KEY": "aws-4444", "MLFLOW_TRACKING_URI": "https://me:uri-5555@host",
           "RAY_AUTH_MODE": "token", "PWD": "/work/main", "TOKENIZERS_PARALLELISM": "false", "SHORT_TOKEN": "ab",
           "OLDPWD": "/work/old", "MYSQL_PWD": "mysql-pw-6"}
    assert environment_secrets(env) == {"env-pw-1", "env-tok-2", "az-333", "aws-4444", "uri-5555", "mysql-pw-6"}
    monkeypatch.setenv("HYPERNAS_TEST_API_KEY", "from-the-env-66")
    assert redact("sent from-the-env-66") == "sent ***"


# --- errors -----------------------------------------------------------------------------------------------------


def test_config_errors_on_secret_paths_do_not_show_the_value():
    err = ConfigError("tracking.token", "must be a non-empty string (got 'hunter2')")
    assert "hunter2" not in str(err) and "looks like a secret" in str(err)
    for space, leaked in (
        ({"api_token": {"type": "categorical", "choices": "Nested-Secret-1"}}, "Nested-Secret-1"),
        ({"api_token": {"type": "categorical", "choices": ["Dup-Secret-2", "Dup-Secret-2"]}}, "Dup-Secret-2"),
        # a plain path, but the value is a secret the config holds elsewhere: masked by value
        ({"api_token": "Known-Secret-3", "x": {"type": "categorical", "choices": ["Known-Secret-3"] * 2}},
         "Known-Secret-3"),
    ):
        with pytest.raises(ConfigError) as info:
            load_config({"name": "e", "trainer": "tests.helpers:failing_train", "space": space,
                         "metric": {"name": "val_loss", "mode": "min"}})
        assert leaked not in str(info.value), str(info.value)
        assert str(info.value).startswith("space."), str(info.value)


def test_config_error_masks_url_passwords_and_known_values():
    remember_secrets(["elsewhere-known-77"])
    err = ConfigError("data.path", "cannot read https://me:pw-in-url@host/elsewhere-known-77 (got 1)")
    assert "pw-in-url" not in str(err) and "elsewhere-known-77" not in str(err) and "(got 1)" in str(err)


def test_validate_prints_no_secret(tmp_path, capsys):
    config = tmp_path / "v.yaml"
    config.write_text(yaml.safe_dump(tiny_config(
        "v", trainer="tests.helpers:credential_train", space={"x": 0.5, "api_token": "Valid-Secret-1", "key_dim": 64},
        metric={"name": "val_loss", "mode": "min"}, tracking={"uri": "http://me:Valid-Pw-2@127.0.0.1:5000"})))
    assert main(["validate", str(config), "--set", "space.passPhrase=Valid-Secret-3"]) == 0
    out = capsys.readouterr().out
    assert not any(s in out for s in ("Valid-Secret-1", "Valid-Pw-2", "Valid-Secret-3")), out
    resolved = yaml.safe_load(out)
    assert resolved["space"]["api_token"] == REDACTED and resolved["space"]["passPhrase"] == REDACTED
    assert resolved["space"]["key_dim"] == {"type": "constant", "value": 64} and resolved["tracking"]["uri"] == "http://me:***@127.0.0.1:5000"

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(tiny_config("bad", space={"api_token": {"type": "categorical",
                                                                           "choices": "Bad-Secret-4"}})))
    assert main(["validate", str(bad)]) == 2
    captured = capsys.readouterr()
    assert "space.api_token.choices" in captured.err and "Bad-Secret-4" not in captured.err + captured.out


class _Custom(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)


def test_redacted_exception_keeps_the_type_and_masks_message_and_traceback():
    remember_secrets(["exc-Secret-5150"])

    def fail():
        raise RuntimeError("cannot reach https://u:exc-Secret-5150@h with key exc-Secret-5150")

    try:
        fail()
    except RuntimeError as err:
        clean = redacted_exception(err)
    assert type(clean) is RuntimeError and str(clean) == "cannot reach https://u:***@h with key ***"
    assert clean.__cause__ is None and clean.__context__ is None
    note = "\n".join(clean.__notes__)
    assert "in fail" in note and "exc-Secret-5150" not in note and "RuntimeError: cannot reach" in note
    assert str(pickle.loads(pickle.dumps(clean))) == str(clean)

    custom = redacted_exception(_Custom(7, "exc-Secret-5150 refused"))
    assert isinstance(custom, RedactedError) and custom.type_name == "_Custom"
    assert "exc-Secret-5150" not in str(custom) and "_Custom" in str(custom)
    assert str(pickle.loads(pickle.dumps(custom))) == str(custom)


# --- writers ----------------------------------------------------------------------------------------------------


class _FakeClient:
    def __init__(self) -> None:
        self.batches: list = []
        self.texts: list = []

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        self.batches.append((list(metrics), list(params), list(tags)))

    def log_text(self, run_id, text, name):
        self.texts.append((name, text))


def test_mlflow_payloads_are_masked():
    from mlflow.entities import Metric

    from search._mlflow import log_batch, log_to_run

    remember_secrets(["mlf-Secret-31337"])
    client = _FakeClient()
    log_batch(client, "r", metrics=[Metric("loss_mlf-Secret-31337", 1.0, 0, 1), Metric("val_loss", 2.0, 0, 1)],
              params={"apiKey": "plain-looking", "key_dim": 64, "note": "uses mlf-Secret-31337"},
              tags={"hypernas.params": json.dumps({"token": "tk-1234", "key_dim": 64})})
    sent = json.dumps([[(m.key, m.value) for m in ms] + [(p.key, p.value) for p in ps] + [(t.key, t.value) for t in ts]
                       for ms, ps, ts in client.batches])
    assert "mlf-Secret-31337" not in sent and "plain-looking" not in sent and "tk-1234" not in sent
    assert '["key_dim", "64"]' in sent and '\\"key_dim\\": 64' in sent  # ordinary params stay (replay needs them)
    assert '["loss_REDACTED", 1.0]' in sent  # "*" is not allowed in an MLflow metric name

    import search._mlflow as adapter

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(adapter, "client_for", lambda uri: client)
        log_to_run("sqlite://", "r", texts={"traceback.txt": "Traceback: mlf-Secret-31337"})
    assert client.texts == [("traceback.txt", "Traceback: ***")]


def test_parquet_columns_are_masked(tmp_path):
    import pyarrow.parquet as pq

    from search.records import ExperimentRecords

    remember_secrets(["pq-Secret-2718"])
    records = ExperimentRecords("val_loss", "min")
    records.started(0, "t0", 1, {"x": 0.5, "api_token": "pq-Secret-2718", "key_dim": 64}, 2)
    records.attempt_failed(0, 1, "FAILED", "RuntimeError: pq-Secret-2718")
    records.ended(0, "FAILED", "RuntimeError: pq-Secret-2718 again")
    trials, _ = records.write(tmp_path)
    assert b"pq-Secret-2718" not in trials.read_bytes()
    row = pq.read_table(trials).to_pylist()[0]
    assert row["error"] == "RuntimeError: *** again" and "***" in row["attempt_history"]
    assert row["param_key_dim"] == 64 and row["param_api_token"] == REDACTED
    assert records.trials[0].params["api_token"] == "pq-Secret-2718"  # the records keep the real value


# --- submit -----------------------------------------------------------------------------------------------------


class _FakeJobs:
    submitted: list = []

    def __init__(self, address: str) -> None:
        self.address = address

    def submit_job(self, *, entrypoint, runtime_env):
        _FakeJobs.submitted.append((entrypoint, runtime_env))
        return "job-1"


def test_submit_prints_no_secret_and_passes_secrets_in_the_runtime_env(tmp_path, monkeypatch, capsys):
    import search._tune._jobs as jobs

    monkeypatch.setattr(jobs, "JobSubmissionClient", _FakeJobs)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "Submit-Pw-1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://me:Submit-Uri-2@mlflow.example")
    _FakeJobs.submitted.clear()
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump(tiny_config("s", trainer="tests.helpers:credential_train",
                                                 space={"x": 0.5, "api_token": "placeholder"},
                                                 metric={"name": "val_loss", "mode": "min"})))
    assert main(["submit", str(config), "--address", "http://127.0.0.1:8265", "--working-dir", str(tmp_path),
                 "--set", "space.api_token=Submit-Set-3", "--set", "budget.trials=3"]) == 0
    printed = capsys.readouterr()
    secrets = ("Submit-Pw-1", "Submit-Uri-2", "Submit-Set-3")
    assert not any(s in printed.out + printed.err for s in secrets), printed
    assert "--set=budget.trials=3" in printed.out and "1 --set item(s) holding secrets" in printed.out
    [(entrypoint, runtime_env)] = _FakeJobs.submitted
    assert not any(s in entrypoint for s in secrets) and "--set=budget.trials=3" in entrypoint
    env = runtime_env["env_vars"]
    assert env["MLFLOW_TRACKING_PASSWORD"] == "Submit-Pw-1"
    assert env["MLFLOW_TRACKING_URI"] == "https://me:Submit-Uri-2@mlflow.example"
    assert secret_overrides_from_env(env) == ["space.api_token=Submit-Set-3"]


def test_submit_waits_for_the_job_agent_and_nothing_else(tmp_path, monkeypatch, capsys):
    """Right after `ray start` Ray's job server answers "No available agent ... try again later": submit tries
    again (saying so once); any other refusal is the command's error at once."""
    import search._tune._jobs as jobs

    class NoAgentYet(_FakeJobs):
        refusals: list = []

        def submit_job(self, *, entrypoint, runtime_env):
            if NoAgentYet.refusals:
                raise RuntimeError(NoAgentYet.refusals.pop(0))
            return super().submit_job(entrypoint=entrypoint, runtime_env=runtime_env)

    monkeypatch.setattr(jobs, "JobSubmissionClient", NoAgentYet)
    monkeypatch.setattr(jobs, "AGENT_RETRY_S", 0.0)
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump(tiny_config("s")))
    no_agent = ("Request failed with status code 500: No available agent to submit job, please try again later.")
    NoAgentYet.refusals[:] = [no_agent] * 3
    _FakeJobs.submitted.clear()
    assert main(["submit", str(config), "--address", "http://127.0.0.1:8265", "--working-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("job agent is not up yet") == 1 and "submitted job job-1" in out
    assert len(_FakeJobs.submitted) == 1 and not NoAgentYet.refusals

    NoAgentYet.refusals[:] = ["Request failed with status code 401: token mismatch", no_agent]
    with pytest.raises(RuntimeError, match="401"):
        jobs.submit("http://127.0.0.1:8265", config, tmp_path, [], wait=False, stream=io.StringIO())
    assert NoAgentYet.refusals == [no_agent]  # not tried again


def test_run_applies_secret_overrides_from_the_runtime_env(tmp_path, monkeypatch):
    import search.experiment

    seen = {}

    def fake_run(config, *, overrides, **kwargs):
        seen["overrides"] = overrides

        class Result:
            counts = {"COMPLETE": 1}
        return Result()

    monkeypatch.setattr(search.experiment, "run_experiment", fake_run)
    monkeypatch.setenv(SECRET_OVERRIDES_ENV, json.dumps(["space.api_token=Env-Set-4"]))
    assert main(["run", str(tmp_path / "x.yaml"), "--set", "budget.trials=2"]) == 0
    assert seen["overrides"] == ["budget.trials=2", "space.api_token=Env-Set-4"]


def test_split_secret_overrides():
    public, secret = split_secret_overrides(["budget.trials=3", "space.apiKey=a", "tracking.uri=https://u:p@h",
                                             "space.key_dim=64", "data.path=s3://b/x?token=zzz"])
    assert public == ["budget.trials=3", "space.key_dim=64"]
    assert secret == ["space.apiKey=a", "tracking.uri=https://u:p@h", "data.path=s3://b/x?token=zzz"]


# --- real runs --------------------------------------------------------------------------------------------------


def test_a_secret_constant_stays_out_of_logs(ray_session, tmp_path, env_without_tracking, capsys):
    from mlflow.tracking import MlflowClient

    config = tiny_config("creds", trainer="tests.helpers:credential_train",
                         space={"x": {"type": "float", "low": 0.1, "high": 0.9}, "api_token": SECRET},
                         metric={"name": "val_loss", "mode": "min"}, scheduler={"type": "none", "max_epochs": 2},
                         budget={"trials": 3, "max_concurrent": 2})
    out = io.StringIO()
    result = run_experiment(config, workdir=tmp_path, stream=out)
    assert result.counts["COMPLETE"] == 3  # the trials saw the real value (the trainer asserts it)
    assert SECRET not in out.getvalue()
    for name in ("trials.parquet", "curves.parquet", "events.parquet"):
        assert SECRET.encode() not in (result.folder / name).read_bytes(), name
    assert SECRET in (result.folder / "config.yaml").read_text()  # the user's own file keeps it (resume needs it)

    client = MlflowClient(result.tracking_uri)
    experiment = client.get_run(result.parent_run_id).info.experiment_id
    for run in client.search_runs([experiment]):
        texts = json.dumps([run.data.params, run.data.tags])
        assert SECRET not in texts
        for artifact in client.list_artifacts(run.info.run_id):
            if not artifact.is_dir:
                local = client.download_artifacts(run.info.run_id, artifact.path, str(tmp_path / "dl"))
                assert SECRET.encode() not in Path(local).read_bytes(), artifact.path

    capsys.readouterr()
    assert main(["best", "creds", "--workdir", str(tmp_path)]) == 0
    assert main(["test", "creds", "--workdir", str(tmp_path)]) == 0  # retrains with the real value
    printed = capsys.readouterr().out
    assert SECRET not in printed and '"api_token": "***"' in printed


# Files that keep the user's own inputs, which resume and test need (see search.redaction): the config, the
# journals, and Ray Tune's resume state (each trial's configuration). Nothing else may hold a configured secret.
_INPUT_FILES = ("config.yaml", "journal.jsonl", "optuna.journal", "tune/tuner.pkl", "tune/experiment_state-")


def _contents(path: Path) -> bytes:
    """A file's bytes; for Parquet also its decoded rows (compression could hide a string from a byte search)."""
    data = path.read_bytes()
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        data += json.dumps(pq.read_table(path).to_pylist(), default=str).encode()
    return data


def test_a_trial_raising_with_secrets_leaves_none_anywhere(ray_session, tmp_path, env_without_tracking, monkeypatch,
                                                           capfd, caplog):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", ENV_SECRET)  # known by value only: no setting holds it
    config = tiny_config("leaky", trainer="tests.search.test_redaction:leaky_train",
                         space={"x": {"type": "float", "low": 0.1, "high": 0.9}, "api_token": CONST_SECRET,
                                "db_password": {"type": "categorical", "choices": [CHOICE_SECRET]},
                                "key_dim": {"type": "categorical", "choices": [48]}},
                         metric={"name": "val_loss", "mode": "min"}, scheduler={"type": "none", "max_epochs": 2},
                         budget={"trials": 2, "max_concurrent": 2}, tolerance={"max_retries": 1})
    workdir = tmp_path / "w"
    result = run_experiment(config, workdir=workdir)  # prints to the real stdout: captured below
    assert result.counts["FAILED"] == 2
    assert main(["status", "leaky", "--workdir", str(workdir)]) == 0
    assert main(["export", "leaky", "--workdir", str(workdir), "--out", str(workdir / "export.csv")]) == 0

    masked = "cannot reach https://u:***@host?token=*** with key ***"
    secrets = (CONST_SECRET, CHOICE_SECRET, ENV_SECRET)
    contents = {p.relative_to(workdir).as_posix(): _contents(p) for p in workdir.rglob("*") if p.is_file()}
    holding = {s: {path for path, data in contents.items() if s.encode() in data} for s in secrets}
    assert holding[ENV_SECRET] == set(), holding  # in no file at all
    inputs = tuple(f"leaky/{name}" for name in _INPUT_FILES)
    for secret in (CONST_SECRET, CHOICE_SECRET):
        assert all(path.startswith(inputs) for path in holding[secret]), holding
    journal = [json.loads(line) for line in (result.folder / "journal.jsonl").read_text().splitlines()]
    # configurations are kept as given (ask, started); errors are masked
    assert not any(s in json.dumps(e) for e in journal if e["kind"] not in ("ask", "started") for s in secrets)

    # ... and the error did travel everywhere, masked: MLflow artifacts, Ray's files, Parquet, the export
    for name in ("traceback.txt", "attempt-1-failed.txt", "error.txt", "trials.parquet", "export.csv"):
        found = [data for path, data in contents.items() if path.rsplit("/", 1)[-1] == name]
        assert found and all(masked.encode() in data for data in found), name
    client = MlflowClient(result.tracking_uri)
    children = [r for r in client.search_runs([client.get_run(result.parent_run_id).info.experiment_id])
                if r.info.run_id != result.parent_run_id]
    for child in children:  # ordinary params keep their values (`hypernas replay` rebuilds trials from them)
        assert child.data.params["key_dim"] == "48" and child.data.params["api_token"] == REDACTED
        typed = json.loads(child.data.tags["hypernas.params"])
        assert typed["key_dim"] == 48 and typed["db_password"] == REDACTED

    captured = capfd.readouterr()
    # Ray's console report of a failed trial is a log record (pytest takes it from Ray's stderr handler)
    printed = captured.out + captured.err + caplog.text
    assert not any(s in printed for s in secrets), [s for s in secrets if s in printed]
    assert masked in caplog.text  # ... masked in the worker, before Ray saw it
