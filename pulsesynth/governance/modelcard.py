"""Build a classifier or model release directory: weights, config, schema, model card.

A ``classifier`` release (white paper mechanism 1) is a DP-trained classifier's weights;
a ``model`` release (mechanism 2) is the DP-VAE itself, from which anyone holding the
release can draw unlimited synthetic rows (post-processing: no budget is spent). Seed
000 ranks a released model below released synthetic data in privacy and seed 004 calls
a generative model sensitive, so a model is released at most at ``confidential``.

The release directory holds exactly ``weights.pt``, ``model.json``, ``schema.yaml``,
``modelcard.json`` and ``modelcard.md``. Everything here is derived from the candidate's
files (weights and value-free config, audit/utility/privacy/gate summaries, the public
schema); the real table is never read.

Expected ``utility.json`` of a classifier candidate (tolerant of close variants)::

    {"target": "income", "test_accuracy": 0.81, "test_auc": 0.86, "test_f1": 0.6,
     "majority_accuracy": 0.76, "test_rows": 9000}

(or the same under ``"test": {"accuracy", "auc", "f1", "rows"}``), measured on real rows
the classifier never saw. A model candidate carries the run's TSTR utility report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from pulsesynth.artifacts import (
    GATE_JSON,
    MODELCARD_MD,
    PRIVACY_JSON,
    RELEASE_CONFIG_JSON,
    RELEASE_STATS_JSON,
    SCHEMA_YAML,
    WEIGHTS_RELEASE_FILES,
    ReleaseDir,
    dump_json,
)
from pulsesynth.governance.datacard import (
    CAVEAT,
    _fmt,
    _gate_summary,
    _load,
    _public_schema,
    file_entry,
    privacy_section,
    release_markdown,
    release_section,
)
from pulsesynth.labels import CONFIDENTIAL, OPEN
from pulsesynth.paths import Paths
from pulsesynth.release_kinds import CLASSIFIER, MODEL, get_kind

# Card wording per kind and label; which kinds exist and what they allow is the registry's.
KIND_TEXT = {CLASSIFIER.name: "DP-trained classifier",
             MODEL.name: "DP generative model (DP-VAE)"}
LABEL_TEXT = {
    CLASSIFIER.name: {OPEN: "Open — DP classifier",
                      CONFIDENTIAL: "Shared: Confidential — DP classifier"},
    MODEL.name: {CONFIDENTIAL: "Shared: Confidential — DP generative model"},
}
TERMS = {
    CLASSIFIER.name: {
        OPEN: {
            "access": "Public: anyone may download this classifier from the open portal.",
            "use": "Any lawful use: scoring your own rows, research, teaching, testing.",
            "reuse": "Re-use and redistribution allowed with attribution to the city data "
                     "office and this model card.",
            "prohibited": "Using its outputs as decisions about individual people; attempting "
                          "membership or attribute inference on the training data.",
        },
        CONFIDENTIAL: {
            "access": "Shared (Confidential): government entities holding a portal access "
                      "token, for their professional responsibilities only.",
            "use": "Scoring rows inside the receiving entity.",
            "reuse": "No redistribution of the weights outside government entities; cite "
                     "this model card.",
            "prohibited": "Using its outputs as decisions about individual people; attempting "
                          "membership or attribute inference on the training data.",
        },
    },
    MODEL.name: {
        CONFIDENTIAL: {
            "access": "Shared (Confidential): government entities holding a portal access "
                      "token, for their professional responsibilities only. A generative "
                      "model is never released as Open.",
            "use": "Drawing synthetic rows inside the receiving entity (the portal's sample "
                   "endpoint or `pulsesynth sample-release`).",
            "reuse": "No redistribution of the weights; synthetic rows drawn from it follow the "
                     "Confidential terms of the dataset's synthetic table; cite this model card.",
            "prohibited": "Attempting to invert the model, to infer whether a person was in the "
                          "training data, or to re-identify anyone; presenting sampled rows as "
                          "real records.",
        },
    },
}
SUITABLE_FOR = {
    CLASSIFIER.name: [
        "scoring rows that follow the declared schema, as a baseline model",
        "comparing against models you train yourself on synthetic data",
        "teaching and testing ML pipelines",
    ],
    MODEL.name: [
        "drawing as many synthetic rows as an analysis needs (no privacy cost per draw)",
        "prototyping analyses, dashboards and pipelines before requesting real data",
        "testing software with realistic, schema-valid rows",
    ],
}
NOT_SUITABLE_FOR = {
    CLASSIFIER.name: [
        "decisions about individual people, vehicles or cases",
        "rare categories and small subgroups: differential privacy blurs exactly these",
        "inputs outside the declared schema's domains",
    ],
    MODEL.name: [
        "decisions about individual people, vehicles or cases (no sampled row is a real record)",
        "rare categories, small subgroups and outliers: differential privacy blurs exactly these",
        "exact counts, totals or official statistics",
    ],
}
SAMPLE_LIMITS_TEXT = ("1 to 10000 rows per request by default; a per-entity rate limit "
                      "(30 requests per 60 s by default); every request is logged")


def build_model_release_dir(out: Path, files: dict[str, bytes], release: Any,
                            approval: dict[str, Any], version: str,
                            paths: Paths) -> dict[str, Any]:
    """Write a classifier/model release into ``out`` (a temporary directory)."""
    target = ReleaseDir(out)
    for name in WEIGHTS_RELEASE_FILES:
        (target.path / name).write_bytes(files[name])
    schema = yaml.safe_load(files[SCHEMA_YAML].decode("utf-8")) or {}
    card = modelcard(files, release, approval, version, schema)
    target.modelcard_md.write_text(modelcard_markdown(card), encoding="utf-8")
    names = [*WEIGHTS_RELEASE_FILES, MODELCARD_MD]
    card["files"] = [file_entry(out, n, release.catalogue_id, version) for n in names]
    target.modelcard_json.write_text(dump_json(card), encoding="utf-8")
    return card


def modelcard(files: dict[str, bytes], release: Any, approval: dict[str, Any], version: str,
              schema: dict[str, Any]) -> dict[str, Any]:
    """The model card as a JSON-ready dict (the portal and ``modelcard.md`` render it)."""
    kind = release.kind
    cat_id = release.catalogue_id
    from pulsesynth.fitness import verdict

    privacy = _load(files, PRIVACY_JSON)
    config = _load(files, RELEASE_CONFIG_JSON)
    kind_text = KIND_TEXT.get(kind, kind)
    fit = verdict(_load(files, RELEASE_STATS_JSON), schema.get("target"), kind)
    gate = _load(files, GATE_JSON)
    return {
        "id": cat_id,
        "dataset": release.dataset,
        "kind": kind,
        "kind_text": kind_text,
        "title": f"{release.title} — {kind_text}",
        "description": str(schema.get("description") or "").strip(),
        "version": version,
        "candidate_id": release.candidate_id,
        "label": release.label,
        "label_text": LABEL_TEXT.get(kind, {}).get(release.label, release.label),
        "terms": TERMS.get(kind, {}).get(release.label, {}),
        "model": _model_summary(config, kind, schema),
        "privacy": privacy_section(privacy) | {
            "post_processing": ("every use of the released weights — predictions, or any "
                                "number of sampled rows — is post-processing of a DP output "
                                "and spends no further privacy budget")},
        "release_statistics": release_section(_load(files, RELEASE_STATS_JSON)),
        "gate": _gate_summary(gate) | {"max_label": gate.get("max_label"),
                                       "capped_from": gate.get("capped_from")},
        "usage": usage(kind, cat_id, version, config),
        "fit_for_purpose": fit,
        "suitable_for": [*SUITABLE_FOR.get(kind, []), *fit["suitable"]],
        "not_suitable_for": [*fit["not_suitable"], *NOT_SUITABLE_FOR.get(kind, [])],
        "caveat": CAVEAT,
        "schema": _public_schema(schema),
        "provenance": {
            "dataset": release.dataset,
            "schema_hash": config.get("schema_hash") or privacy.get("schema_hash"),
            "model_id": release.model_id,
            "model_hash": privacy.get("model_hash"),
            "code_version": privacy.get("code_version"),
        },
        "approval": {"steward": approval.get("steward"), "role": approval.get("role"),
                     "approved_at": approval.get("decided_at"), "note": approval.get("note")},
    }


def _model_summary(config: dict[str, Any], kind: str, schema: dict[str, Any]) -> dict[str, Any]:
    features = config.get("features")
    if not isinstance(features, list):
        features = [b.get("name") for b in (config.get("encoder") or {}).get("blocks", [])
                    if isinstance(b, dict)]
    target = config.get("target") or schema.get("target")
    # A classifier's target is its output, not a feature; a generative model models it.
    predicts_target = get_kind(kind).predicts_target
    out: dict[str, Any] = {
        "kind": kind,
        "architecture": config.get("architecture"),
        "features": [str(f) for f in features or [] if f != target or not predicts_target],
        "schema_id": config.get("schema_id") or schema.get("id"),
        "schema_hash": config.get("schema_hash"),
        "format": "PyTorch state_dict (weights.pt), load with torch.load(weights_only=True); "
                  "model.json rebuilds the network",
    }
    if predicts_target:
        out["target"] = target
        classes = config.get("classes")
        if classes is None:
            col = next((c for c in schema.get("columns") or []
                        if isinstance(c, dict) and c.get("name") == target), {})
            classes = col.get("categories")
        out["classes"] = classes
    return out


def usage(kind: str, cat_id: str, version: str, config: dict[str, Any]) -> dict[str, Any]:
    """How to use the release (commands are run where the release directory was saved)."""
    release_dir = f"{cat_id}-{version}/"
    if not get_kind(kind).samplable:  # weights to score rows with
        return {
            "summary": "Download weights.pt, model.json and schema.yaml into one directory, "
                       "then score a CSV of rows that follow the declared schema.",
            "commands": [f"pulsesynth predict --release {release_dir} --input rows.csv"],
            "python": "torch.load('weights.pt', weights_only=True) gives the state_dict; "
                      "model.json describes the network and its input encoding",
        }
    return {
        "summary": "Draw synthetic rows from the model: through the portal (token holders of "
                   "its label) or locally from the downloaded files.",
        "endpoint": f"/datasets/{cat_id}/{version}/sample?n=N&seed=S&format=csv",
        "endpoint_limits": SAMPLE_LIMITS_TEXT,
        "commands": [f"pulsesynth sample-release --release {release_dir} -n 1000 --seed 0 "
                     "--out rows.csv"],
        "python": "DPVAESynthesizer.from_release(directory, schema).sample(n, seed)",
        "seeded": "the same seed gives the same rows",
    }


def modelcard_markdown(card: dict[str, Any]) -> str:
    """Human-readable model card (the same facts as ``modelcard.json``)."""
    p, m, use = card["privacy"], card["model"], card["usage"]
    lines = [f"# {card['title']} — {card['version']}", "",
             f"**{card['label_text']}** · kind: `{card['kind']}` · dataset: "
             f"`{card['dataset']}`", ""]
    if card["description"]:
        lines += [card["description"], ""]
    lines += ["## Terms of use and re-use", ""]
    lines += [f"- **{k}**: {v}" for k, v in card["terms"].items()] + [""]
    # A value the release does not record is left out, never printed as null/None.
    lines += ["## Model", "", f"- kind: {card['kind_text']}"]
    if m.get("architecture"):
        lines += [f"- architecture: `{json.dumps(m['architecture'], sort_keys=True)}`"]
    lines += [f"- features: {', '.join(m.get('features') or []) or '—'}"]
    if get_kind(card["kind"]).predicts_target and m.get("target"):
        classes = m.get("classes")
        lines += [f"- target: {m['target']}" + (f" (classes: {classes})" if classes else "")]
    lines += [f"- schema: {m.get('schema_id')} (hash `{m.get('schema_hash')}`)",
              f"- format: {m.get('format')}", ""]
    lines += ["## Privacy", "", f"- ε = {_fmt(p['epsilon'])}, δ = {_fmt(p['delta'])} "
              f"(accountant: {p['accountant']})", f"- {p['epsilon_vs_ln2']}",
              f"- mechanism: {p['mechanism']}; noise multiplier {_fmt(p['noise_multiplier'])}, "
              f"sample rate {_fmt(p['sample_rate'])}, steps {_fmt(p['steps'])}, clipping norm "
              f"{_fmt(p['max_grad_norm'])}", f"- {p['post_processing']}", ""]
    g = card["gate"]
    lines += release_markdown(card["release_statistics"])
    lines += ["", f"- gate: {g['label']} — {g['reason']}",
              f"- most open label for this kind: {g.get('max_label') or '—'}", "",
              f"> {card['caveat']}", ""]
    lines += ["## How to use it", "", use["summary"], ""]
    if use.get("endpoint"):
        lines += [f"- portal: `GET {use['endpoint']}` ({use['endpoint_limits']})"]
    lines += [f"- `{c}`" for c in use["commands"]]
    lines += [f"- Python: {use['python']}", ""]
    lines += ["## Suitable for", ""] + [f"- {s}" for s in card["suitable_for"]] + [""]
    lines += ["## Not suitable for", ""] + [f"- {s}" for s in card["not_suitable_for"]] + [""]
    lines += ["## Declared schema", "", "| column | type | role |", "| --- | --- | --- |"]
    lines += [f"| {c.get('name')} | {c.get('type')} | {c.get('role')} |"
              for c in card["schema"].get("columns", [])] + [""]
    prov, appr = card["provenance"], card["approval"]
    lines += ["## Provenance and approval", "",
              f"- dataset: `{prov['dataset']}`",
              f"- model: {prov['model_id']} (hash `{prov['model_hash']}`)",
              f"- code version: {prov['code_version']}",
              f"- approved by {appr['steward']} ({appr['role']}) at {appr['approved_at']}",
              f"- candidate id: `{card['candidate_id']}`", ""]
    return "\n".join(lines)
