"""Reading -f arguments: documents, defaults and the places errors point at (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.cli.manifests import ManifestError, load

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}{ns}}}\ndata: {{a: b}}\n"


def cm(name: str, ns: str = "") -> str:
    return CM.format(name=name, ns=f", namespace: {ns}" if ns else "")


def test_documents_in_order_with_namespace_defaults(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    (d / "b.yaml").write_text("---\n" + cm("two", "other") + "---\n---\n" + cm("three"))
    (d / "a.yml").write_text(cm("one"))
    (d / "notes.txt").write_text("not a manifest")
    cluster = tmp_path / "c.json"
    cluster.write_text('{"apiVersion": "cluster.flotilla.io/v1alpha1", "kind": "Cluster",'
                       ' "metadata": {"name": "east"}, "spec": {"region": "r"}}')
    got = load([str(d), str(cluster)])
    assert [(m.ref, m.namespace) for m in got] == [
        ("configmap/one", "default"), ("configmap/two", "other"),
        ("configmap/three", "default"), ("cluster/east", "")]
    assert got[2].origin.endswith("b.yaml: document 2"), "empty documents are not counted"


def test_dash_n_fills_in_and_must_agree(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(cm("one"))
    assert load([str(f)], "staging")[0].namespace == "staging"
    f.write_text(cm("one", "prod"))
    with pytest.raises(ManifestError, match='namespace is "prod" but -n says "staging"'):
        load([str(f)], "staging")


def test_kind_list_is_expanded(tmp_path: Path) -> None:
    f = tmp_path / "list.yaml"
    f.write_text("apiVersion: v1\nkind: List\nitems:\n"
                 "- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n"
                 "- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n")
    got = load([str(f)])
    assert [m.ref for m in got] == ["configmap/a", "configmap/b"]
    assert got[1].origin.endswith("document 1 item 1")


@pytest.mark.parametrize(("text", "message"), [
    ("a: [1,\n", "bad.yaml: line 2, column 1: invalid YAML"),
    (cm("ok") + "---\napiVersion: v1\nkind: Widget\nmetadata: {name: w}\n",
     "bad.yaml: document 2 (Widget \"w\"): "),
    ("---\n", "no objects found"),
])
def test_errors_say_where(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ManifestError) as err:
        load([str(f)])
    assert message in str(err.value)
