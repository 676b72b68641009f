"""Building blocks for structural OpenAPI v3 schemas, as controller-gen writes them from Go types.

Karmada's CRDs are generated from Go structs; the Go types map onto schema nodes in a
fixed way (``int32`` → integer/int32, ``metav1.Time`` → string/date-time,
``resource.Quantity`` → int-or-string with kube's quantity pattern, ``RawExtension`` →
an object that preserves unknown fields, ``apiextensionsv1.JSON`` → any value). Writing
those mappings once here keeps the per-kind modules readable as transcriptions of the
Go types, and makes the Kubernetes types Karmada embeds (``LabelSelector``,
``Toleration``, ``Taint``, ``NodeSelector``, ``metav1.Condition``) identical everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Schema = dict[str, Any]

QUANTITY_PATTERN = (r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
                    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")


def _node(doc: str, node: Schema, extra: Mapping[str, Any]) -> Schema:
    if doc:
        node = {"description": doc, **node}
    node.update(extra)
    return node


def obj(doc: str, properties: Mapping[str, Schema] | None = None, *, required: Iterable[str] = (),
        **extra: Any) -> Schema:
    """A Go struct: named properties, ``required`` for fields without ``omitempty``/``+optional``."""
    node: Schema = {"type": "object"}
    if properties is not None:
        node["properties"] = dict(properties)
    req = sorted(required)
    if req:
        node["required"] = req
    return _node(doc, node, extra)


def string(doc: str = "", *, enum: Iterable[str] | None = None, default: str | None = None,
           **extra: Any) -> Schema:
    node: Schema = {"type": "string"}
    if enum is not None:
        node["enum"] = list(enum)
    if default is not None:
        node["default"] = default
    return _node(doc, node, extra)


def int32(doc: str = "", *, default: int | None = None, **extra: Any) -> Schema:
    node: Schema = {"type": "integer", "format": "int32"}
    if default is not None:
        node["default"] = default
    return _node(doc, node, extra)


def int64(doc: str = "", **extra: Any) -> Schema:
    return _node(doc, {"type": "integer", "format": "int64"}, extra)


def integer(doc: str = "", **extra: Any) -> Schema:
    """Go's ``int`` and ``uint``: controller-gen gives them no format."""
    return _node(doc, {"type": "integer"}, extra)


def boolean(doc: str = "", **extra: Any) -> Schema:
    return _node(doc, {"type": "boolean"}, extra)


def date_time(doc: str = "") -> Schema:
    """``metav1.Time``: RFC 3339 in a string."""
    return _node(doc, {"type": "string", "format": "date-time"}, {})


def array(doc: str, items: Schema, **extra: Any) -> Schema:
    return _node(doc, {"type": "array", "items": items}, extra)


def strings(doc: str = "", **extra: Any) -> Schema:
    return array(doc, {"type": "string"}, **extra)


def string_map(doc: str = "") -> Schema:
    """``map[string]string``."""
    return _node(doc, {"type": "object", "additionalProperties": {"type": "string"}}, {})


def quantity(doc: str = "") -> Schema:
    """``resource.Quantity``: a number or a string such as ``500m`` or ``2Gi``."""
    return _node(doc, {"anyOf": [{"type": "integer"}, {"type": "string"}], "pattern": QUANTITY_PATTERN,
                       "x-kubernetes-int-or-string": True}, {})


def resource_list(doc: str = "") -> Schema:
    """``corev1.ResourceList``: resource name → quantity."""
    return _node(doc, {"type": "object", "additionalProperties": quantity()}, {})


def raw_extension(doc: str = "") -> Schema:
    """``runtime.RawExtension`` marked ``PreserveUnknownFields``: an object kept as written."""
    return _node(doc, {"type": "object", "x-kubernetes-preserve-unknown-fields": True}, {})


def json_value(doc: str = "") -> Schema:
    """``apiextensionsv1.JSON``: any JSON value (a string, a number, a list, an object)."""
    return _node(doc, {"x-kubernetes-preserve-unknown-fields": True}, {})


# -- Kubernetes types Karmada embeds --------------------------------------------------------------------

def label_selector(doc: str) -> Schema:
    """``metav1.LabelSelector`` (an atomic map: replaced whole, never merged)."""
    requirement = obj("A label selector requirement: a key, an operator and values.", {
        "key": string("The label key that the selector applies to."),
        "operator": string("The key's relationship to the values: In, NotIn, Exists and DoesNotExist."),
        "values": strings("The string values. Non-empty for In and NotIn, empty for Exists and DoesNotExist.",
                          **{"x-kubernetes-list-type": "atomic"}),
    }, required=("key", "operator"))
    return obj(doc, {
        "matchExpressions": array("A list of label selector requirements, ANDed.", requirement,
                                  **{"x-kubernetes-list-type": "atomic"}),
        "matchLabels": string_map("A map of {key,value} pairs, each equivalent to an In requirement with "
                                  "a single value."),
    }, **{"x-kubernetes-map-type": "atomic"})


def node_selector_requirement(doc: str) -> Schema:
    """``corev1.NodeSelectorRequirement``: also what Karmada's FieldSelector matches clusters with."""
    return obj(doc, {
        "key": string("The label key (or field name) that the selector applies to."),
        "operator": string("The key's relationship to the values: In, NotIn, Exists, DoesNotExist, Gt and Lt."),
        "values": strings("The string values; one integer for Gt and Lt, empty for Exists and DoesNotExist.",
                          **{"x-kubernetes-list-type": "atomic"}),
    }, required=("key", "operator"))


def node_selector(doc: str) -> Schema:
    """``corev1.NodeSelector``: terms ORed, requirements within a term ANDed."""
    term = obj("A null or empty node selector term matches no objects; its requirements are ANDed.", {
        "matchExpressions": array("A list of node selector requirements by node's labels.",
                                  node_selector_requirement("A node selector requirement."),
                                  **{"x-kubernetes-list-type": "atomic"}),
        "matchFields": array("A list of node selector requirements by node's fields.",
                             node_selector_requirement("A node selector requirement."),
                             **{"x-kubernetes-list-type": "atomic"}),
    }, **{"x-kubernetes-map-type": "atomic"})
    return obj(doc, {
        "nodeSelectorTerms": array("Required. A list of node selector terms. The terms are ORed.", term,
                                   **{"x-kubernetes-list-type": "atomic"}),
    }, required=("nodeSelectorTerms",), **{"x-kubernetes-map-type": "atomic"})


def toleration() -> Schema:
    """``corev1.Toleration``."""
    return obj("The object this Toleration is attached to tolerates any taint that matches the triple "
               "<key,value,effect> using the matching operator <operator>.", {
                   "effect": string("The taint effect to match; empty matches all effects. One of NoSchedule, "
                                    "PreferNoSchedule and NoExecute."),
                   "key": string("The taint key the toleration applies to; empty matches all keys (with "
                                 "operator Exists)."),
                   "operator": string("The key's relationship to the value: Exists or Equal (the default)."),
                   "tolerationSeconds": int64("How long a NoExecute taint is tolerated before eviction; unset "
                                              "means forever."),
                   "value": string("The taint value the toleration matches; empty with operator Exists."),
               })


def taint() -> Schema:
    """``corev1.Taint``."""
    return obj("The object this Taint is attached to has the \"effect\" on any object that does not tolerate "
               "the Taint.", {
                   "effect": string("Required. The effect of the taint on objects that do not tolerate it: "
                                    "NoSchedule, PreferNoSchedule and NoExecute."),
                   "key": string("Required. The taint key to be applied."),
                   "timeAdded": date_time("The time at which the taint was added (NoExecute taints only)."),
                   "value": string("The taint value corresponding to the taint key."),
               }, required=("effect", "key"))


def conditions(doc: str) -> Schema:
    """A list of ``metav1.Condition``, with kube's validation of each field."""
    condition = obj("Condition contains details for one aspect of the current state of this API resource.", {
        "lastTransitionTime": date_time("The last time the condition transitioned from one status to "
                                        "another."),
        "message": string("A human readable message indicating details about the transition.",
                          maxLength=32768),
        "observedGeneration": int64("The .metadata.generation that the condition was set based upon.",
                                    minimum=0),
        "reason": string("A programmatic identifier (CamelCase) of the reason for the last transition.",
                         maxLength=1024, minLength=1,
                         pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"),
        "status": string("Status of the condition.", enum=("True", "False", "Unknown")),
        "type": string("Type of condition in CamelCase or in foo.example.com/CamelCase.", maxLength=316,
                       pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                               r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"),
    }, required=("lastTransitionTime", "message", "reason", "status", "type"))
    return array(doc, condition)


def root(doc: str, *, spec: Schema, status: Schema | None = None, spec_required: bool = True) -> Schema:
    """The top of a kind's schema: TypeMeta, ObjectMeta, spec and (optionally) status."""
    props: Schema = {
        "apiVersion": string("APIVersion defines the versioned schema of this representation of an object."),
        "kind": string("Kind is a string value representing the REST resource this object represents."),
        "metadata": {"type": "object"},
        "spec": spec,
    }
    if status is not None:
        props["status"] = status
    return obj(doc, props, required=("spec",) if spec_required else ())
