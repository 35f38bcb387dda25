"""Strategic-merge patch against cases transcribed from Kubernetes' own tests
(apimachinery ``pkg/util/strategicpatch/patch_test.go``: the three-way "Current +
ThreeWay -> Result" and two-way "Original + TwoWay -> Modified" halves), on the same test
type: ``mergingList`` merges by ``name``, ``mergingIntList`` is a set of scalars,
``nonMergingList`` is atomic, ``retainKeysMap`` holds a ``mergingList``.

Kubernetes compares most results with merge lists sorted (their order is not
significant); the cases about order compare exactly, as theirs do.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from flotilla.api.patch import PatchError, strategic_merge_patch
from flotilla.api.patch.schema import KUBE_SCHEMAS, MergeList

ITEM: dict[str, Any] = {}
ITEM.update({
    "mergingList": MergeList("name", ITEM),
    "mergeItemPtr": MergeList("name", ITEM),
    "mergingIntList": MergeList(None),
    "retainKeysMap": {"mergingList": MergeList("name", ITEM)},
    "retainKeysMergingList": MergeList("name", ITEM, retain_keys=True),
})


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_sorted(v) for v in value]
        return sorted(items, key=lambda i: str(i.get("name")) if isinstance(i, dict)
                      else str(i))
    return value


CASES = [
    # (description, original or current, patch, result, order matters)
    ("nested patch merge with empty list", """
name: hi
mergingList:
- name: hello2
""", """
$setElementOrder/mergingList:
- name: hello
- name: doesntexist
mergingList:
- name: hello
""", """
name: hi
mergingList:
- name: hello
- name: hello2
""", False),
    ("delete items in lists of scalars", """
mergingIntList: [1, 2, 3]
""", """
$setElementOrder/mergingIntList: [1, 2]
$deleteFromPrimitiveList/mergingIntList: [3]
""", """
mergingIntList: [1, 2]
""", True),
    ("add map and delete map from merging list with conflict", """
mergingList:
  - name: 1
    other: a
  - name: 4
    other: c
""", """
$setElementOrder/mergingList:
  - name: 2
  - name: 3
mergingList:
  - name: 2
  - name: 3
  - name: 1
    $patch: delete
""", """
mergingList:
  - name: 4
    other: c
  - name: 2
  - name: 3
""", False),
    ("add an item in a list and preserve order", """
mergingList:
  - name: 1
    other: a
  - name: 2
    value: 2
    other: b
""", """
$setElementOrder/mergingList:
  - name: 3
  - name: 1
  - name: 2
mergingList:
  - name: 3
    value: 3
""", """
mergingList:
  - name: 3
    value: 3
  - name: 1
    other: a
  - name: 2
    value: 2
    other: b
""", True),
    ("delete and reorder in one list, reorder in another", """
mergingList:
- name: a
  value: a
- name: b
  value: b
mergeItemPtr:
- name: c
  value: c
- name: d
  value: d
""", """
$setElementOrder/mergingList:
- name: b
$setElementOrder/mergeItemPtr:
- name: d
- name: c
mergingList:
- $patch: delete
  name: a
""", """
mergingList:
- name: b
  value: b
mergeItemPtr:
- name: d
  value: d
- name: c
  value: c
""", True),
    ("$setElementOrder contains item that is not present in the list to be merged", """
mergingList:
  - name: 1
  - name: 3
""", """
$setElementOrder/mergingList:
  - name: 3
  - name: 2
  - name: 1
mergingList:
  - name: 3
    value: 3
  - name: 1
    value: 1
""", """
mergingList:
  - name: 3
    value: 3
  - name: 1
    value: 1
""", True),
    ("$setElementOrder contains item that is not present in the int list", """
mergingIntList: [1, 3]
""", """
$setElementOrder/mergingIntList: [3, 2, 1]
""", """
mergingIntList: [3, 1]
""", True),
    ("preserve the order from the patch in a merging int list", """
mergingIntList: [1, 2, 3]
""", """
mergingIntList: [3, 1]
""", """
mergingIntList: [2, 3, 1]
""", True),
    ("retainKeys map with no change", """
retainKeysMap:
  name: foo
  mergingList:
  - name: a
  - name: b
  - name: c
""", """
retainKeysMap:
  $retainKeys:
    - mergingList
    - name
    - value
  $setElementOrder/mergingList:
    - name: a
    - name: b
  value: bar
""", """
retainKeysMap:
  name: foo
  value: bar
  mergingList:
  - name: a
  - name: b
  - name: c
""", False),
    ("retainKeys drops the keys it does not list", """
retainKeysMap:
  name: foo
  value: old
  other: gone
""", """
retainKeysMap:
  $retainKeys: [name, value]
  value: bar
""", """
retainKeysMap:
  name: foo
  value: bar
""", False),
    ("delete map from nested map", """
name: 1
simpleMap:
  key1: 1
""", """
simpleMap:
  $patch: delete
""", """
name: 1
""", False),
    ("replace a map", """
simpleMap:
  key1: 1
  key2: 2
""", """
simpleMap:
  $patch: replace
  key3: 3
""", """
simpleMap:
  key3: 3
""", False),
    ("replace a merging list", """
mergingList:
  - name: 1
  - name: 2
""", """
mergingList:
  - name: 3
  - $patch: replace
""", """
mergingList:
  - name: 3
""", False),
    ("non-merging list is replaced; null deletes a field", """
name: 1
value: 1
nonMergingList:
  - name: 1
  - name: 2
""", """
value: null
nonMergingList:
  - name: 3
""", """
name: 1
nonMergingList:
  - name: 3
""", False),
    ("merge a field inside a merging list item", """
mergingList:
  - name: 1
    value: 1
    other: a
  - name: 2
""", """
mergingList:
  - name: 1
    value: 2
    other: null
""", """
mergingList:
  - name: 1
    value: 2
  - name: 2
""", False),
]


@pytest.mark.parametrize(("current", "patch", "result", "ordered"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_kubernetes_cases(current: str, patch: str, result: str, ordered: bool) -> None:
    got = strategic_merge_patch(yaml.safe_load(current), yaml.safe_load(patch), ITEM)
    want = yaml.safe_load(result)
    assert (got if ordered else _sorted(got)) == (want if ordered else _sorted(want))


def test_an_item_without_its_merge_key_refuses_the_patch() -> None:
    with pytest.raises(PatchError) as err:
        strategic_merge_patch({"mergingList": [{"name": "a"}]},
                              {"mergingList": [{"value": "x"}]}, ITEM)
    assert "merge key 'name'" in err.value.message


@pytest.mark.parametrize("patch", [{"$patch": "frobnicate"}, {"$frob": 1}])
def test_unknown_directives_are_refused(patch: dict[str, Any]) -> None:
    with pytest.raises(PatchError):
        strategic_merge_patch({}, patch, ITEM)


def test_deployment_containers_env_and_ports_merge_by_their_keys() -> None:
    deploy = yaml.safe_load("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop, finalizers: [a]}
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: web
        image: shop:1
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
        ports: [{containerPort: 80, name: http}]
      - name: sidecar
        image: proxy:1
""")
    patch = yaml.safe_load("""
metadata: {finalizers: [b]}
spec:
  template:
    spec:
      containers:
      - name: web
        image: shop:2
        env: [{name: B, value: "3"}, {name: C, value: "4"}]
        ports: [{containerPort: 8443, name: https}]
""")
    got = strategic_merge_patch(deploy, patch, KUBE_SCHEMAS["Deployment"])
    web, sidecar = got["spec"]["template"]["spec"]["containers"]
    assert web["image"] == "shop:2"
    assert sidecar == {"name": "sidecar", "image": "proxy:1"}
    assert web["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"},
                          {"name": "C", "value": "4"}]
    # A new item the stored order cannot rank goes first, as Kubernetes merges it.
    assert [p["containerPort"] for p in web["ports"]] == [8443, 80]
    assert got["metadata"]["finalizers"] == ["b", "a"]
    assert got["spec"]["replicas"] == 2
