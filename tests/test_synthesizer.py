"""DP-VAE synthesizer on a small toy table: privacy accounting, determinism, persistence."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_encoding import TOY, assert_in_domain, toy_frame

from pulsesynth.errors import SchemaError
from pulsesynth.schema import DatasetSchema, parse_schema
from pulsesynth.synth import DPVAESynthesizer, NegativeELBO, TabularVAE, expected_batch_size
from pulsesynth.synth import synthesizer as synth_mod
from pulsesynth.synth.train import default_delta

FAST = {"epochs": 3, "hidden": (32, 32), "latent_dim": 4}


def schema_with(**privacy: object) -> DatasetSchema:
    raw = copy.deepcopy(TOY)
    raw["privacy"].update(privacy)
    return parse_schema(raw)


@pytest.fixture(scope="module")
def schema() -> DatasetSchema:
    return schema_with()


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return toy_frame(600, seed=11)


@pytest.fixture(scope="module")
def fitted(schema: DatasetSchema, data: pd.DataFrame) -> DPVAESynthesizer:
    return DPVAESynthesizer(schema, seed=3, **FAST).fit(data, snapshot_id="snap-1")


def test_epsilon_within_two_percent_of_target(fitted: DPVAESynthesizer) -> None:
    rep = fitted.privacy_report
    assert rep["private"] is True and rep["accountant"] == "prv"
    assert rep["target_epsilon"] == 1.0  # from the schema
    assert 0.98 * 1.0 <= rep["epsilon"] <= 1.0
    assert rep["steps"] == rep["planned_steps"] > 0
    assert rep["noise_multiplier"] > 0 and 0 < rep["sample_rate"] <= 1


def test_rdp_accountant_and_explicit_epsilon(schema: DatasetSchema, data: pd.DataFrame) -> None:
    syn = DPVAESynthesizer(schema, epsilon=0.5, accountant="rdp", seed=0, **FAST).fit(data)
    rep = syn.privacy_report
    assert rep["accountant"] == "rdp"
    assert 0.98 * 0.5 <= rep["epsilon"] <= 0.5


def test_metadata_records_mechanism(fitted: DPVAESynthesizer, data: pd.DataFrame) -> None:
    m = fitted.metadata
    n = m["train_rows"]
    # δ is a fixed public value, never 1/(10 n): n must not leave through δ
    assert m["delta"] == default_delta() == 1e-6
    assert m["batch_size"] == expected_batch_size(n)
    assert m["seed_source"] == "caller" and m["size_rule"].startswith("exact")
    for key in ("noise_multiplier", "sample_rate", "steps", "max_grad_norm", "accountant",
                "epsilon", "delta", "epochs", "batch_size", "lr", "kl_weight", "seed",
                "private", "schema_hash", "dataset_id", "snapshot_id", "versions", "config",
                "training_report"):
        assert key in m, key
    assert m["snapshot_id"] == "snap-1" and m["dataset_id"] == "toy"
    assert set(m["versions"]) >= {"torch", "opacus"}
    report = m["training_report"]
    assert isinstance(report["collapse_warning"], bool)
    # one entry per pass of the Poisson loader (int(1/q) batches each) until the planned
    # ceil(epochs / q) steps are done
    passes = -(-m["steps"] // int(1 / m["sample_rate"]))
    assert [h["epoch"] for h in report["history"]] == list(range(1, passes + 1))
    eps = [h["epsilon"] for h in report["history"]]
    assert eps == sorted(eps) and eps[-1] == m["epsilon"]


def test_default_fits_use_fresh_secret_randomness(schema: DatasetSchema,
                                                  data: pd.DataFrame) -> None:
    """Two default (unseeded) private fits of the same data differ: nothing replays them."""
    a = DPVAESynthesizer(schema, **{**FAST, "epochs": 1}).fit(data)
    b = DPVAESynthesizer(schema, **{**FAST, "epochs": 1}).fit(data)
    assert a.metadata["seed_source"] == b.metadata["seed_source"] == "secret"
    assert a.seed != b.seed
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)
    assert not a.sample(200).equals(a.sample(200))  # unseeded draws are fresh too


def test_schedule_comes_from_the_public_row_count(schema: DatasetSchema,
                                                  data: pd.DataFrame) -> None:
    """With a DP row count given, q, the expected batch and the steps follow it, not n."""
    syn = DPVAESynthesizer(schema, seed=0, **FAST).fit(data, public_rows=1000)
    m = syn.metadata
    assert m["batch_size"] == 250 and m["sample_rate"] == 0.25
    assert m["steps"] == m["planned_steps"] == 3 * 4
    assert m["public_rows"] == 1000 and m["size_rule"] == "DP count of the rows trained on"


def test_batch_size_rule() -> None:
    assert expected_batch_size(100_000) == 4096
    assert expected_batch_size(1000) == 250
    assert expected_batch_size(3) == 1


def test_samples_within_declared_domain(fitted: DPVAESynthesizer, schema: DatasetSchema) -> None:
    out = fitted.sample(500, seed=1)
    assert len(out) == 500
    assert_in_domain(out, schema)
    assert not {"rid", "person", "note"} & set(out.columns)  # no identifiers or free text


def test_same_seed_same_outputs(
    fitted: DPVAESynthesizer, schema: DatasetSchema, data: pd.DataFrame
) -> None:
    pd.testing.assert_frame_equal(fitted.sample(200, seed=7), fitted.sample(200, seed=7))
    assert not fitted.sample(200, seed=7).equals(fitted.sample(200, seed=8))
    again = DPVAESynthesizer(schema, seed=3, **FAST).fit(data, snapshot_id="snap-1")
    for key, value in fitted.model.state_dict().items():
        torch.testing.assert_close(value, again.model.state_dict()[key], rtol=0, atol=0)
    pd.testing.assert_frame_equal(fitted.sample(300, seed=2), again.sample(300, seed=2))
    assert again.metadata["noise_multiplier"] == fitted.metadata["noise_multiplier"]


def test_save_load_round_trip(fitted: DPVAESynthesizer, schema: DatasetSchema,
                              tmp_path: Path) -> None:
    fitted.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.pt").is_file()
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["schema_hash"] == schema.hash and meta["private"] is True
    loaded = DPVAESynthesizer.load(tmp_path / "m", schema)
    pd.testing.assert_frame_equal(loaded.sample(300, seed=4), fitted.sample(300, seed=4))
    assert loaded.privacy_report == fitted.privacy_report


def test_load_refuses_other_schema(fitted: DPVAESynthesizer, tmp_path: Path) -> None:
    fitted.save(tmp_path / "m")
    other = schema_with(epsilon=2.0)
    assert other.hash != fitted.schema.hash
    with pytest.raises(SchemaError, match="schema hash"):
        DPVAESynthesizer.load(tmp_path / "m", other)


@pytest.mark.parametrize("k", [1, 2])
def test_rows_per_unit_cap_reaches_training(
    k: int, data: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = schema_with(max_rows_per_unit=k)
    seen: dict[str, int] = {}
    real_train = synth_mod.train_vae

    def spy(x: np.ndarray, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        seen["rows"] = x.shape[0]
        return real_train(x, *args, **kwargs)

    monkeypatch.setattr(synth_mod, "train_vae", spy)
    transformed: list[pd.DataFrame] = []
    real_transform = synth_mod.TableEncoder.transform

    def spy_transform(self, df):  # type: ignore[no-untyped-def]
        transformed.append(df)
        return real_transform(self, df)

    monkeypatch.setattr(synth_mod.TableEncoder, "transform", spy_transform)
    syn = DPVAESynthesizer(schema, seed=0, rows_per_unit=None,
                           **{**FAST, "epochs": 1}).fit(data)
    assert transformed[0].groupby("person").size().max() <= k
    expected = int(data.groupby("person").size().clip(upper=k).sum())
    assert seen["rows"] == expected == syn.metadata["train_rows"]
    assert expected < len(data)
    cap = syn.metadata["training_report"]["unit_cap"]
    assert cap["rows_trained"] == expected and cap["max_rows_per_unit"] == k
    assert cap["rows_per_unit_trained"] == k
    assert syn.metadata["unit_rule"].startswith(f"rows per unit capped at {k}, epsilon")


def test_by_default_a_unit_of_several_rows_trains_on_one_at_the_full_epsilon(
    data: pd.DataFrame, tmp_path: Path,
) -> None:
    """The schema lets a person keep 3 rows; the synthesizer keeps one (UNIT_ROWS), so
    DP-SGD and the marginals run at the unit's ε with no group-privacy discount."""
    schema = schema_with(max_rows_per_unit=3)
    syn = DPVAESynthesizer(schema, seed=0, **{**FAST, "epochs": 1})
    assert syn.rows_per_unit == synth_mod.UNIT_ROWS == 1
    assert syn.trained_rows_per_unit == 1
    assert DPVAESynthesizer(schema, rows_per_unit=5).trained_rows_per_unit == 3
    syn.fit(data)
    persons = data["person"].nunique()
    cap = syn.metadata["training_report"]["unit_cap"]
    assert (cap["rows_per_unit_trained"], cap["max_rows_per_unit"]) == (1, 3)
    assert cap["rows_trained"] == syn.metadata["train_rows"] == persons < len(data)
    assert "group_privacy" not in syn.metadata
    assert syn.metadata["target_epsilon"] == 1.0
    assert syn.metadata["unit_rule"] == (
        "rows per unit capped at 1 (the schema allows 3; fewer rows, each at less noise), "
        "epsilon holds per unit (unit: person)")
    assert syn.get_params()["rows_per_unit"] == 1
    # A saved model keeps its recipe's rows per unit (shadows are trained by its clone).
    syn.save(tmp_path / "one")
    assert DPVAESynthesizer.load(tmp_path / "one", schema).rows_per_unit == 1
    every = DPVAESynthesizer(schema, seed=0, rows_per_unit=None, **{**FAST, "epochs": 1})
    every.fit(data).save(tmp_path / "every")
    assert DPVAESynthesizer.load(tmp_path / "every", schema).trained_rows_per_unit == 3


def test_a_unit_of_k_rows_runs_every_mechanism_at_epsilon_over_k(data: pd.DataFrame) -> None:
    """Two rows per person are two rows to DP-SGD and to the marginals: both must run at
    the row-level target (ε/2, δ_r) for the card's ε to hold per person (group privacy)."""
    import math

    from pulsesynth.dp import GroupPrivacy
    from pulsesynth.synth.train import gaussian_noise_for

    one = DPVAESynthesizer(schema_with(max_rows_per_unit=1), seed=0,
                           **{**FAST, "epochs": 1}).fit(data)
    two = DPVAESynthesizer(schema_with(max_rows_per_unit=2), seed=0, rows_per_unit=2,
                           **{**FAST, "epochs": 1}).fit(data)
    delta = default_delta()
    group = GroupPrivacy(2, 1.0, delta)
    assert "group_privacy" not in one.metadata  # k = 1: nothing changes
    meta = two.metadata
    rows = meta["group_privacy"]
    assert rows["rows_per_unit"] == 2 and rows["row_target_epsilon"] == 0.5
    assert rows["row_delta"] == delta / (2 * math.exp(0.5))
    assert 0.5 * (1 - 0.005) <= rows["row_epsilon"] <= 0.5
    assert meta["epsilon"] == 2 * rows["row_epsilon"] <= 1.0
    assert meta["target_epsilon"] == 1.0
    assert meta["delta"] == group.unit_delta(rows["row_epsilon"]) <= delta
    # The marginals' noise is calibrated to the row-level share, not the per-unit one.
    marginal_noise = meta["prior_mechanisms"][0][0]
    assert marginal_noise == gaussian_noise_for(0.8 * 0.5, rows["row_delta"], "prv")
    assert marginal_noise > one.metadata["prior_mechanisms"][0][0]
    assert meta["noise_multiplier"] > one.metadata["noise_multiplier"]
    assert "epsilon / 2 (group privacy over 2 rows)" in meta["unit_rule"]
    assert two.privacy_report["group_privacy"] == rows
    assert two.release_config()["privacy"]["group_privacy"] == rows
    # k = 1: neither the report nor the released model.json gains the block.
    assert "group_privacy" not in one.privacy_report
    assert "group_privacy" not in one.release_config()["privacy"]


def test_group_privacy_block_is_copied_only_where_a_unit_keeps_several_rows() -> None:
    from pulsesynth.reports import group_privacy_block

    block = {"rows_per_unit": 5, "row_epsilon": 0.2}
    assert group_privacy_block({"epsilon": 1.0, "group_privacy": block}) == {
        "group_privacy": block}
    assert group_privacy_block({"epsilon": 1.0}) == {}
    assert group_privacy_block({"group_privacy": None}) == {}


def test_group_privacy_targets_compose_back_to_the_unit_guarantee() -> None:
    import math

    from pulsesynth.dp import GroupPrivacy

    same = GroupPrivacy(1, 0.88, 1e-6)
    assert (same.row_epsilon, same.row_delta) == (0.88, 1e-6)
    meta = {"private": True, "epsilon": 0.87, "delta": 1e-6}
    assert same.report(meta) is meta
    five = GroupPrivacy(5, 1.0, 1e-6)
    assert five.row_epsilon == 0.2
    assert five.row_delta == 1e-6 / (5 * math.exp(4 * 0.2))
    assert five.unit_epsilon(five.row_epsilon) == 1.0
    assert five.unit_delta(five.row_epsilon) == pytest.approx(1e-6, rel=1e-12)
    with pytest.raises(ValueError, match="at least 1"):
        GroupPrivacy(0, 1.0, 1e-6)
    # No declared unit: every row is its own unit and nothing is capped, so k = 1.
    assert GroupPrivacy.of((), 5, 1.0, 1e-6).rows_per_unit == 1
    assert GroupPrivacy.of(("person",), 5, 1.0, 1e-6).rows_per_unit == 5


def test_non_private_mode(schema: DatasetSchema, data: pd.DataFrame, tmp_path: Path) -> None:
    syn = DPVAESynthesizer(schema, private=False, seed=0, **FAST).fit(data)
    assert syn.metadata["private"] is False
    rep = syn.privacy_report
    assert rep["private"] is False and rep["epsilon"] is None and rep["delta"] is None
    syn.save(tmp_path / "plain")
    meta = json.loads((tmp_path / "plain" / "metadata.json").read_text())
    assert meta["private"] is False
    assert DPVAESynthesizer.load(tmp_path / "plain", schema).private is False
    assert_in_domain(syn.sample(100, seed=0), schema)


def test_elbo_per_record(fitted: DPVAESynthesizer, data: pd.DataFrame) -> None:
    part = data.iloc[:50]
    e = fitted.elbo(part)
    assert list(e.columns) == ["elbo", "reconstruction", "kl"]
    assert len(e) == 50 and e.index.equals(part.index)
    assert np.isfinite(e.to_numpy()).all()
    assert (e["reconstruction"] >= 0).all() and (e["kl"] >= 0).all()
    np.testing.assert_allclose(e["elbo"], -(e["reconstruction"] + e["kl"]))
    pd.testing.assert_frame_equal(e, fitted.elbo(part))  # deterministic


def test_unfitted_raises(schema: DatasetSchema) -> None:
    with pytest.raises(RuntimeError):
        DPVAESynthesizer(schema).sample(5)


def test_criterion_reductions() -> None:
    torch.manual_seed(0)
    blocks = [("a", 0, 3), ("b", 3, 2)]
    model = TabularVAE(5, (8,), 2)
    crit = NegativeELBO(blocks, 5, 2, kl_weight=0.3, reduction="none")
    x = torch.tensor([[1, 0, 0, 0, 1], [0, 0, 1, 1, 0]], dtype=torch.float32)
    out = model(x)
    assert out.shape == (2, 5 + 2 * 2)
    per = crit(out, x)
    assert per.shape == (2,)
    crit.reduction = "mean"
    torch.testing.assert_close(crit(out, x), per.mean())
    crit.reduction = "sum"
    torch.testing.assert_close(crit(out, x), per.sum())


def test_split_criterion_gives_the_same_bits_as_slicing_each_block() -> None:
    """The criterion splits the output instead of slicing it per block (a cheaper
    backward): losses and gradients must equal the per-block slicing exactly."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    blocks = [("a", 0, 3), ("skipped", 3, 2), ("b", 5, 4)]
    used = [blocks[0], blocks[2]]  # a gap in the middle, as when a block is left out
    x = torch.zeros(64, 9)
    x[torch.arange(64), torch.randint(0, 3, (64,))] = 1
    x[torch.arange(64), 5 + torch.randint(0, 4, (64,))] = 1
    out = torch.randn(64, 9 + 2 * 2, requires_grad=True)
    crit = NegativeELBO(used, 9, 2, kl_weight=0.3, reduction="none")
    loss = crit(out, x)
    (grad,) = torch.autograd.grad(loss.sum(), out)

    def sliced(o: torch.Tensor) -> torch.Tensor:
        recon = torch.zeros(o.shape[0])
        for _, start, width in used:
            logp = F.log_softmax(o[:, start: start + width], dim=1)
            recon = recon - (x[:, start: start + width] * logp).sum(dim=1)
        mu, logvar = o[:, 9:11], o[:, 11:]
        return recon + 0.3 * 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)

    ref = sliced(out)
    (ref_grad,) = torch.autograd.grad(ref.sum(), out)
    assert torch.equal(loss, ref)
    assert torch.equal(grad, ref_grad)


def test_blocks_out_of_order_fall_back_to_slicing() -> None:
    from pulsesynth.synth.model import _partition

    assert _partition([(0, 3), (5, 4)], 9) == ([3, 2, 4], [0, 2])
    assert _partition([(0, 3), (3, 2)], 7) == ([3, 2, 2], [0, 1])
    assert _partition([(3, 2), (0, 3)], 5) is None
    crit = NegativeELBO([("b", 3, 2), ("a", 0, 3)], 5, 2)
    x = torch.tensor([[1, 0, 0, 0, 1.0]])
    out = torch.zeros(1, 9)
    assert crit(out, x).item() == pytest.approx(float(np.log(3) + np.log(2)))


def test_collapse_flag_on_flat_loss() -> None:
    from pulsesynth.synth.train import _report

    flat = [{"epoch": i, "epochs": 3, "loss": 5.0, "epsilon": None} for i in (1, 2, 3)]
    assert _report(flat, 1.0)["collapse_warning"] is True
    falling = [dict(h, loss=5.0 - h["epoch"]) for h in flat]
    assert _report(falling, 1.0)["collapse_warning"] is False


def test_a_warm_started_fit_is_flagged_only_when_its_loss_rises() -> None:
    """A warm start begins near the marginals' fit: a loss that barely falls is healthy
    there, a rising one is not."""
    from pulsesynth.synth.train import _report

    def history(*losses: float) -> list[dict]:
        return [{"epoch": i, "epochs": len(losses), "loss": v, "epsilon": None}
                for i, v in enumerate(losses, 1)]

    assert _report(history(5.0, 4.95, 4.99), 1.0, warm=True)["collapse_warning"] is False
    assert _report(history(5.0, 4.95, 4.99), 1.0)["collapse_warning"] is True
    rose = _report(history(5.0, 5.05, 5.2), 1.0, warm=True)
    assert rose["collapse_warning"] is True
    assert rose["collapse_reasons"] == [
        "loss rose by more than 2% from the first to the last epoch after the warm start"]


def test_same_seed_same_model_while_other_threads_train_and_load(
    schema: DatasetSchema, data: pd.DataFrame, tmp_path: Path
) -> None:
    """A Dask worker trains a dataset's model and another audit's shadow in two threads of
    one process, and loads models beside them: seeded results must not depend on that."""
    import threading

    recipe = FAST | {"epochs": 15}
    alone = {seed: DPVAESynthesizer(schema, seed=seed, **recipe).fit(data)
             for seed in (3, 4)}
    alone[3].save(tmp_path / "saved")
    together: dict[int, DPVAESynthesizer] = {}
    stop = threading.Event()

    def train(seed: int) -> None:
        together[seed] = DPVAESynthesizer(schema, seed=seed, **recipe).fit(data)

    def load_repeatedly() -> None:
        while not stop.is_set():
            DPVAESynthesizer.load(tmp_path / "saved", schema)

    loader = threading.Thread(target=load_repeatedly)
    trainers = [threading.Thread(target=train, args=(seed,)) for seed in (3, 4)]
    loader.start()
    for t in trainers:
        t.start()
    for t in trainers:
        t.join()
    stop.set()
    loader.join()
    for seed in (3, 4):
        for key, value in alone[seed].model.state_dict().items():
            torch.testing.assert_close(value, together[seed].model.state_dict()[key],
                                       rtol=0, atol=0)
