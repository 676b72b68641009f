"""Label and field selectors: kube's grammar, matching semantics, per-kind fields and error texts."""

from __future__ import annotations

from typing import Any

import pytest

from atoll.api.builtin import new_registry
from atoll.api.errors import BadRequest
from atoll.api.resources import ResourceInfo
from atoll.api.selectors import (
    FieldSelector,
    LabelSelector,
    field_set,
    selector_string,
    validate_label_selector,
)

REGISTRY = new_registry()


def info(group: str, plural: str) -> ResourceInfo:
    found = REGISTRY.get(group, "v1" if group not in ("autoscaling",) else "v2", plural)
    assert found is not None, plural
    return found


# -- label selectors: parsing ------------------------------------------------------------------


@pytest.mark.parametrize(("text", "canonical"), [
    ("", ""),
    ("a=b", "a=b"),
    ("a==b", "a==b"),
    ("a!=b", "a!=b"),
    ("a=b,c!=d,e in (y,x),f notin (z),g,!h", "a=b,c!=d,e in (x,y),f notin (z),g,!h"),
    ("z=1,!b,a", "a,!b,z=1"),
    ("  x = y ,  z  ", "x=y,z"),
    ("env in (prod, dev)", "env in (dev,prod)"),
    ("a in ()", "a in ()"),
    ("app.kubernetes.io/name=web", "app.kubernetes.io/name=web"),
    ("a=", "a="),
    ("x>5", "x>5"),
    ("in=notin", "in=notin"),
])
def test_parse_and_render(text: str, canonical: str) -> None:
    assert LabelSelector.parse(text).to_string() == canonical


@pytest.mark.parametrize(("text", "message"), [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("a=b,", "found '', expected: identifier after ','"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("a b=c", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("x>y", "unable to parse requirement: values[0]: Invalid value: \"y\": for 'Gt', 'Lt' operators, the value "
            "must be an integer"),
    ("a=-b", "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be an empty "
             "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
             "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
             "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
    ("-a=b", "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric "
             "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  "
             "or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?"
             "[A-Za-z0-9]')"),
])
def test_parse_errors_are_kube_bad_requests(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as exc:
        LabelSelector.parse(text)
    assert exc.value.message == message
    assert exc.value.code == 400


# -- label selectors: matching -----------------------------------------------------------------

LABELS = {"app": "web", "tier": "front", "version": "3"}


@pytest.mark.parametrize(("text", "matches"), [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("missing!=x", True),
    ("tier in (front,back)", True),
    ("tier notin (front)", False),
    ("missing notin (a)", True),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("version>2", True),
    ("version<3", False),
    ("app=web,tier=back", False),
])
def test_matching(text: str, matches: bool) -> None:
    assert LabelSelector.parse(text).matches(LABELS) is matches


@pytest.mark.parametrize(("selector", "text", "matches"), [
    (None, "", False),
    ({}, "", True),
    ({"matchLabels": {"app": "web"}}, "app=web", True),
    ({"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["front", "back"]},
        {"key": "canary", "operator": "DoesNotExist"},
        {"key": "app", "operator": "Exists"}]}, "app=web,app,!canary,tier in (back,front)", True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, "tier notin (front)", False),
])
def test_structured_selectors(selector: dict[str, Any] | None, text: str, matches: bool) -> None:
    parsed = LabelSelector.from_dict(selector)
    assert parsed.to_string() == text
    assert parsed.matches(LABELS) is matches


def test_structured_selector_rejects_unknown_operator() -> None:
    with pytest.raises(BadRequest, match='"Near" is not a valid label selector operator'):
        LabelSelector.from_dict({"matchExpressions": [{"key": "a", "operator": "Near", "values": ["b"]}]})


def test_selector_string_for_scale() -> None:
    assert selector_string({"matchLabels": {"b": "2", "a": "1"}}) == "a=1,b=2"
    assert selector_string("app=web") == "app=web"
    assert selector_string(None) == ""


def test_requires_exact_match() -> None:
    sel = LabelSelector.parse("app=web,tier in (a)")
    assert sel.requires_exact_match("app") == "web"
    assert sel.requires_exact_match("tier") is None


@pytest.mark.parametrize(("selector", "expected"), [
    ({"matchLabels": {"app": "web"}}, []),
    ({"matchExpressions": [{"key": "a", "operator": "In"}]},
     [("s.matchExpressions[0].values", "Required value: must be specified when `operator` is 'In' or 'NotIn'")]),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     [("s.matchExpressions[0].values",
       "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'")]),
    ({"matchExpressions": [{"key": "a", "operator": "Near"}]},
     [("s.matchExpressions[0].operator", 'Invalid value: "Near": not a valid selector operator')]),
])
def test_validate_label_selector(selector: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert [(c["field"], c["message"]) for c in validate_label_selector(selector, "s")] == expected


# -- field selectors -----------------------------------------------------------------------------

POD = {
    "metadata": {"name": "p1", "namespace": "ns1"},
    "spec": {"nodeName": "node-a", "restartPolicy": "Always", "schedulerName": "default-scheduler",
             "serviceAccountName": "default", "hostNetwork": True},
    "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
               "nominatedNodeName": ""},
}


@pytest.mark.parametrize(("text", "matches"), [
    ("", True),
    ("metadata.name=p1", True),
    ("metadata.name==p1", True),
    ("metadata.name!=p1", False),
    ("metadata.namespace=ns1,spec.nodeName=node-a", True),
    ("spec.host=node-a", True),
    ("spec.nodeName=", False),
    ("spec.restartPolicy=Always", True),
    ("spec.schedulerName=default-scheduler", True),
    ("spec.serviceAccountName=default", True),
    ("spec.hostNetwork=true", True),
    ("status.phase=Running,status.phase!=Pending", True),
    ("status.podIP=10.0.0.5", True),
    ("status.podIPs=10.0.0.5", False),
    ("status.podIPs=", True),
    ("status.nominatedNodeName=", True),
])
def test_pod_field_selectors(text: str, matches: bool) -> None:
    assert FieldSelector.parse(text, info("", "pods")).matches(POD) is matches


@pytest.mark.parametrize(("group", "plural", "obj", "text", "matches"), [
    ("", "nodes", {"metadata": {"name": "n"}, "spec": {"unschedulable": True}}, "spec.unschedulable=true", True),
    ("", "nodes", {"metadata": {"name": "n"}, "spec": {}}, "spec.unschedulable=false", True),
    ("", "namespaces", {"metadata": {"name": "n"}, "status": {"phase": "Active"}}, "status.phase=Active", True),
    ("", "secrets", {"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls"},
     "type=kubernetes.io/tls", True),
    ("", "services", {"metadata": {"name": "s", "namespace": "d"}, "spec": {"clusterIP": "10.96.0.1",
                                                                           "type": "ClusterIP"}},
     "spec.clusterIP=10.96.0.1,spec.type=ClusterIP", True),
    ("", "events", {"metadata": {"name": "e", "namespace": "d"}, "involvedObject": {"kind": "Pod", "name": "p"},
                    "reason": "Started", "source": {"component": "kubelet"}, "type": "Normal"},
     "involvedObject.kind=Pod,involvedObject.name=p,reason=Started,source=kubelet,type=Normal", True),
    ("", "events", {"metadata": {"name": "e", "namespace": "d"}, "reportingComponent": "ctrl"}, "source=ctrl", True),
    ("events.k8s.io", "events", {"metadata": {"name": "e", "namespace": "d"}, "regarding": {"kind": "Pod"},
                                 "reportingController": "c"}, "regarding.kind=Pod,reportingController=c", True),
    ("batch", "jobs", {"metadata": {"name": "j", "namespace": "d"}, "status": {"succeeded": 2}},
     "status.successful=2", True),
    ("batch", "jobs", {"metadata": {"name": "j", "namespace": "d"}}, "status.successful=0", True),
    ("", "configmaps", {"metadata": {"name": "c", "namespace": "d"}}, "metadata.name=c,metadata.namespace=d", True),
    ("rbac.authorization.k8s.io", "clusterroles", {"metadata": {"name": "admin"}}, "metadata.namespace=x", False),
])
def test_kind_field_selectors(group: str, plural: str, obj: dict[str, Any], text: str, matches: bool) -> None:
    assert FieldSelector.parse(text, info(group, plural)).matches(obj) is matches


@pytest.mark.parametrize(("group", "plural", "text", "message"), [
    ("", "pods", "spec.foo=x", "field label not supported: spec.foo"),
    ("", "nodes", "metadata.namespace=x", "field label not supported: metadata.namespace"),
    ("", "events", "regarding.kind=Pod", "field label not supported: regarding.kind"),
    ("events.k8s.io", "events", "involvedObject.kind=Pod", "field label not supported: involvedObject.kind"),
    ("batch", "jobs", "status.active=1", 'field label "status.active" not supported for Job'),
    ("apps", "replicasets", "status.replicas=1",
     '"status.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'),
    ("apps", "deployments", "spec.replicas=1",
     '"spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'),
])
def test_unsupported_fields(group: str, plural: str, text: str, message: str) -> None:
    with pytest.raises(BadRequest) as exc:
        FieldSelector.parse(text, info(group, plural))
    assert exc.value.message == message


@pytest.mark.parametrize(("text", "message"), [
    ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
    ("metadata.name=a\\qb", "invalid field selector: invalid escape sequence: \\q"),
    ("metadata.name=a=b", "invalid field selector: unescaped character in value: 61"),
])
def test_field_selector_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as exc:
        FieldSelector.parse(text)
    assert exc.value.message == message


def test_field_selector_escapes_and_rendering() -> None:
    sel = FieldSelector.parse("metadata.name=a\\,b\\=c", info("", "configmaps"))
    assert sel.requirements[0].value == "a,b=c"
    assert sel.matches({"metadata": {"name": "a,b=c", "namespace": "d"}})
    assert sel.to_string() == "metadata.name=a\\,b\\=c"
    assert sel.requires_exact_match("metadata.name") == "a,b=c"


def test_custom_resource_selectable_fields() -> None:
    crd = ResourceInfo(group="example.com", version="v1", kind="Widget", plural="widgets", singular="widget",
                       namespaced=False, custom=True, selectable_fields=(".spec.color", ".spec.size"))
    sel = FieldSelector.parse("spec.color=red,spec.size=3", crd)
    assert sel.matches({"metadata": {"name": "w"}, "spec": {"color": "red", "size": 3}})
    assert not sel.matches({"metadata": {"name": "w"}, "spec": {"color": "blue", "size": 3}})
    with pytest.raises(BadRequest, match=r"field label not supported: metadata\.namespace"):
        FieldSelector.parse("metadata.namespace=x", crd)
    with pytest.raises(BadRequest, match=r"field label not supported: spec\.shape"):
        FieldSelector.parse("spec.shape=x", crd)
    assert field_set(crd, {"metadata": {"name": "w"}, "spec": {"color": "red", "size": True}}) == {
        "metadata.name": "w", "spec.color": "red", "spec.size": "true"}
