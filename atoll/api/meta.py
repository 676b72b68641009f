"""Object metadata over plain dicts, checked the way kube-apiserver checks it.

Every check returns *causes* (``details.causes`` entries built with
:func:`atoll.api.errors.field_error`) carrying kube's field paths and messages, so the
API server can answer ``invalid(kind, name, causes)`` word for word like kube-apiserver
(``metadata.name: Invalid value: "Foo": a lowercase RFC 1123 subdomain must ...``).

The message texts follow ``k8s.io/apimachinery/pkg/util/validation`` and
``.../api/validation`` of Kubernetes 1.32; the value rendering follows Go's
``field.Error``: strings quoted, numbers bare, maps as ``map[string]string{...}``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import Any

from atoll.api.errors import field_error

logger = logging.getLogger(__name__)

Cause = dict[str, str]
"""One ``details.causes`` entry: ``{"reason", "message", "field"}``."""

NameValidator = Callable[[str, bool], list[str]]
"""``(name, prefix) -> messages``; ``prefix`` is True when checking a ``generateName``."""

# -- field paths ------------------------------------------------------------------------


class FieldPath:
    """A kube field path: ``spec.containers[0].ports[1]``, ``metadata.labels[app]``."""

    __slots__ = ("_text",)

    def __init__(self, text: str = "") -> None:
        self._text = text

    def child(self, *names: str) -> FieldPath:
        text = self._text
        for name in names:
            text = f"{text}.{name}" if text else name
        return FieldPath(text)

    def index(self, i: int) -> FieldPath:
        return FieldPath(f"{self._text}[{i}]")

    def key(self, k: str) -> FieldPath:
        return FieldPath(f"{self._text}[{k}]")

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"FieldPath({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldPath) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)


PathLike = FieldPath | str
METADATA = FieldPath("metadata")

# -- value rendering (Go's field.Error.ErrorBody) ----------------------------------------


class GoRepr:
    """A value whose Go rendering is already known (``v1.LabelSelector{...}``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


_GO_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\a": "\\a",
               "\b": "\\b", "\f": "\\f", "\v": "\\v"}


def go_quote(s: str) -> str:
    """Go's ``%q`` of a string."""
    out = []
    for ch in s:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x80 else (f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _go_scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return go_quote(v)
    return str(v)


def go_value(value: Any) -> str:
    """How Go's ``field.Error`` renders a bad value."""
    if isinstance(value, GoRepr):
        return value.text
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        inner = ", ".join(f"{go_quote(k)}:{go_quote(v)}" for k, v in sorted(value.items()))
        return f"map[string]string{{{inner}}}"
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return "[]int32{" + ", ".join(str(v) for v in value) + "}"
    import orjson

    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(value)


def label_selector_repr(selector: Mapping[str, Any] | None) -> GoRepr:
    """Go's ``%#v`` of a ``metav1.LabelSelector``, as kube prints it in validation errors."""
    if selector is None:
        return GoRepr("null")
    ml = selector.get("matchLabels")
    if ml is None:
        labels = "map[string]string(nil)"
    else:
        labels = go_value({str(k): str(v) for k, v in dict(ml).items()})
    exprs = selector.get("matchExpressions")
    if exprs is None:
        exprs_text = "[]v1.LabelSelectorRequirement(nil)"
    else:
        parts = []
        for e in exprs:
            e = e if isinstance(e, Mapping) else {}
            vals = e.get("values")
            vals_text = "[]string(nil)" if vals is None else go_value([str(v) for v in vals])
            parts.append(f"v1.LabelSelectorRequirement{{Key:{go_quote(str(e.get('key', '')))}, "
                         f"Operator:{go_quote(str(e.get('operator', '')))}, Values:{vals_text}}}")
        exprs_text = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    return GoRepr(f"v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs_text}}}")


# -- cause builders (field.Invalid, field.Required, ...) ---------------------------------


def invalid_value(path: PathLike, value: Any, detail: str = "") -> Cause:
    msg = f"Invalid value: {go_value(value)}"
    return field_error(str(path), f"{msg}: {detail}" if detail else msg, reason="FieldValueInvalid")


def required(path: PathLike, detail: str = "") -> Cause:
    msg = f"Required value: {detail}" if detail else "Required value"
    return field_error(str(path), msg, reason="FieldValueRequired")


def forbidden(path: PathLike, detail: str = "") -> Cause:
    return field_error(str(path), f"Forbidden: {detail}" if detail else "Forbidden", reason="FieldValueForbidden")


def not_supported(path: PathLike, value: Any, valid: Iterable[str]) -> Cause:
    valid = list(valid)
    msg = f"Unsupported value: {go_value(value)}"
    if valid:
        msg += ": supported values: " + ", ".join(go_quote(v) for v in valid)
    return field_error(str(path), msg, reason="FieldValueNotSupported")


def duplicate(path: PathLike, value: Any) -> Cause:
    return field_error(str(path), f"Duplicate value: {go_value(value)}", reason="FieldValueDuplicate")


def not_found(path: PathLike, value: Any) -> Cause:
    return field_error(str(path), f"Not found: {go_value(value)}", reason="FieldValueNotFound")


def too_long(path: PathLike, max_length: int) -> Cause:
    return field_error(str(path), f"Too long: must have at most {max_length} bytes", reason="FieldValueTooLong")


def too_many(path: PathLike, actual: int, max_items: int) -> Cause:
    return field_error(str(path), f"Too many: {actual}: must have at most {max_items} items",
                       reason="FieldValueTooMany")


def immutable(path: PathLike, new_value: Any, old_value: Any) -> list[Cause]:
    """``ValidateImmutableField``: ``field is immutable`` when the value changed."""
    if new_value == old_value:
        return []
    return [invalid_value(path, new_value, FIELD_IMMUTABLE)]


FIELD_IMMUTABLE = "field is immutable"
IS_NEGATIVE = "must be greater than or equal to 0"


def non_negative(path: PathLike, value: Any) -> list[Cause]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return [invalid_value(path, value, IS_NEGATIVE)]
    return []


# -- string format rules (k8s.io/apimachinery/pkg/util/validation) ------------------------


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    msg += " (e.g. "
    for i, ex in enumerate(examples):
        if i > 0:
            msg += " or "
        msg += f"'{ex}', "
    return msg + f"regex used for validation is '{fmt}')"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


EMPTY_ERROR = "must be non-empty"

_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
              "alphanumeric character")
_QNAME_RE = re.compile(f"^{_QNAME_FMT}$")
QUALIFIED_NAME_MAX_LENGTH = 63

_LABEL_VALUE_FMT = f"({_QNAME_FMT})?"
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
                    "or '.', and must start and end with an alphanumeric character")
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
LABEL_VALUE_MAX_LENGTH = 63

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                      "and must start and end with an alphanumeric character")
_DNS1123_LABEL_RE = re.compile(f"^{_DNS1123_LABEL_FMT}$")
DNS1123_LABEL_MAX_LENGTH = 63

_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                          "'-' or '.', and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
DNS1123_SUBDOMAIN_MAX_LENGTH = 253

_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
                      "an alphabetic character, and end with an alphanumeric character")
_DNS1035_LABEL_RE = re.compile(f"^{_DNS1035_LABEL_FMT}$")
DNS1035_LABEL_MAX_LENGTH = 63

_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_CONFIG_KEY_RE = re.compile(f"^{_CONFIG_KEY_FMT}$")

_ENV_VAR_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_VAR_MSG = ("a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
                "or '.', and must not start with a digit")
_ENV_VAR_RE = re.compile(f"^{_ENV_VAR_FMT}$")


def _fullmatch(rx: re.Pattern[str], value: str) -> bool:
    return rx.fullmatch(value) is not None


def is_qualified_name(value: str) -> list[str]:
    """``IsQualifiedName``: label keys, annotation keys, finalizers (``prefix/name``)."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return ["a qualified name " + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif len(name) > QUALIFIED_NAME_MAX_LENGTH:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX_LENGTH))
    if not _fullmatch(_QNAME_RE, name):
        errs.append("name part " + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(max_len_error(LABEL_VALUE_MAX_LENGTH))
    if not _fullmatch(_LABEL_VALUE_RE, value):
        errs.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_dns1123_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _fullmatch(_DNS1123_LABEL_RE, value):
        if _fullmatch(_DNS1123_SUBDOMAIN_RE, value):
            errs.append("must not contain dots")
        else:
            errs.append(_regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _fullmatch(_DNS1123_SUBDOMAIN_RE, value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1035_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1035_LABEL_MAX_LENGTH))
    if not _fullmatch(_DNS1035_LABEL_RE, value):
        errs.append(_regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def _chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_config_map_key(value: str) -> list[str]:
    """Keys of ConfigMap/Secret ``data``."""
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _fullmatch(_CONFIG_KEY_RE, value):
        errs.append(_regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    return errs + _chdir_prefix(value)


def is_env_var_name(value: str) -> list[str]:
    errs: list[str] = []
    if not _fullmatch(_ENV_VAR_RE, value):
        errs.append(_regex_error(_ENV_VAR_MSG, _ENV_VAR_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    return errs + _chdir_prefix(value)


def is_valid_port_num(port: Any) -> list[str]:
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return []
    return ["must be between 1 and 65535, inclusive"]


_PORT_NAME_CHARSET = re.compile("^[-a-z0-9]+$")
_PORT_NAME_ONE_LETTER = re.compile("[a-z]")


def is_valid_port_name(port: str) -> list[str]:
    """``IS_SVC_NAME`` (IANA service name) rules for named ports."""
    errs: list[str] = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not _PORT_NAME_CHARSET.match(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_ONE_LETTER.search(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_ip(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


# -- object names (apimachinery ValidateNameFunc family) ---------------------------------


def _mask_trailing_dash(name: str) -> str:
    """A generateName may end in '-': kube checks it as if the random suffix followed."""
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def name_is_dns_subdomain(name: str, prefix: bool = False) -> list[str]:
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool = False) -> list[str]:
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool = False) -> list[str]:
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def validate_path_segment_name(name: str, prefix: bool = False) -> list[str]:
    """Any name that is safe as one URL path segment (RBAC kinds, and the generic last check)."""
    if not prefix:
        for bad in (".", ".."):
            if name == bad:
                return [f"may not be '{bad}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in name]


def validate_namespace_name(name: str, prefix: bool = False) -> list[str]:
    return name_is_dns_label(name, prefix)


# -- generated values ---------------------------------------------------------------------

_RANDOM_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""kube's ``utilrand`` alphabet: no vowels and no 0/1/3, so generated names spell no words."""
MAX_GENERATED_NAME_LENGTH = 63 - 5


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(n))


def generate_name(base: str) -> str:
    """``SimpleNameGenerator``: the prefix (cut to 58 characters) plus 5 random characters."""
    if len(base) > MAX_GENERATED_NAME_LENGTH:
        base = base[:MAX_GENERATED_NAME_LENGTH]
    return base + random_suffix(5)


def new_uid() -> str:
    return str(uuid.uuid4())


def now_rfc3339(now: dt.datetime | None = None) -> str:
    """``metav1.Time`` serialisation: UTC, whole seconds, ``Z``."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339_micro(now: dt.datetime | None = None) -> str:
    """``metav1.MicroTime`` serialisation (Lease times, events.k8s.io ``eventTime``)."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(value: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp (``Z`` or an offset, optional fraction) to an aware datetime."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


# -- dict helpers -------------------------------------------------------------------------


def metadata_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    md = obj.get("metadata")
    return md if isinstance(md, dict) else {}


def get_path(obj: Any, path: str, default: Any = None) -> Any:
    """Read a dotted path (``spec.template.metadata.labels``; a leading dot is allowed)."""
    cur = obj
    for part in path.lstrip(".").split("."):
        if not part:
            continue
        if not isinstance(cur, Mapping) or part not in cur:
            return default
        cur = cur[part]
    return cur


def string_map(value: Any) -> dict[str, str]:
    """A labels/annotations map as ``str -> str`` (None and non-maps become empty)."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


# -- quantities ---------------------------------------------------------------------------

QUANTITY_REGEX_MESSAGE = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
                     "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
                     "P": Fraction(10**15), "E": Fraction(10**18)}


def parse_quantity(value: Any) -> Fraction:
    """A ``resource.Quantity`` (``"100m"``, ``"1Gi"``, ``"1e3"``, ``2``) as an exact number.

    Raises ``ValueError`` with kube's message when the text is no quantity.
    """
    if isinstance(value, bool):
        raise ValueError(QUANTITY_REGEX_MESSAGE)
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(value).limit_denominator(10**9)
    if not isinstance(value, str):
        raise ValueError(QUANTITY_REGEX_MESSAGE)
    text = value.strip()
    m = _QUANTITY_RE.match(text)
    if not m:
        raise ValueError(QUANTITY_REGEX_MESSAGE)
    number, suffix = m.group(1), m.group(2)
    if number.count(".") > 1 or number.strip("+-") in ("", "."):
        raise ValueError(QUANTITY_REGEX_MESSAGE)
    try:
        base = Fraction(number)
    except ValueError:
        raise ValueError(QUANTITY_REGEX_MESSAGE) from None
    if suffix in _BINARY_SUFFIXES:
        return base * _BINARY_SUFFIXES[suffix]
    if suffix in _DECIMAL_SUFFIXES:
        return base * _DECIMAL_SUFFIXES[suffix]
    em = re.fullmatch(r"[eE]([-+]?[0-9]+)", suffix)
    if em:
        return base * Fraction(10) ** int(em.group(1))
    raise ValueError("unable to parse quantity's suffix")


# -- labels, annotations, finalizers, ownerReferences ------------------------------------

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})
FINALIZER_ORPHAN = "orphan"
FINALIZER_DELETE_DEPENDENTS = "foregroundDeletion"


def validate_label_name(key: str, path: PathLike) -> list[Cause]:
    return [invalid_value(path, key, m) for m in is_qualified_name(key)]


def validate_labels(labels: Any, path: PathLike) -> list[Cause]:
    """``ValidateLabels``: every key a qualified name, every value a label value (field is the map)."""
    causes: list[Cause] = []
    if labels is None:
        return causes
    if not isinstance(labels, Mapping):
        return [invalid_value(path, labels, "must be a map of string keys to string values")]
    for k, v in labels.items():
        causes += validate_label_name(str(k), path)
        value = "" if v is None else v
        if not isinstance(value, str):
            causes.append(invalid_value(path, value, "must be a string"))
            continue
        causes += [invalid_value(path, value, m) for m in is_valid_label_value(value)]
    return causes


def annotations_size(annotations: Mapping[str, Any]) -> int:
    return sum(len(str(k).encode()) + len(("" if v is None else str(v)).encode()) for k, v in annotations.items())


def validate_annotations(annotations: Any, path: PathLike) -> list[Cause]:
    """Keys are qualified names (case-insensitive); keys plus values at most 256 KiB in total."""
    causes: list[Cause] = []
    if annotations is None:
        return causes
    if not isinstance(annotations, Mapping):
        return [invalid_value(path, annotations, "must be a map of string keys to string values")]
    for k in annotations:
        causes += [invalid_value(path, str(k), m) for m in is_qualified_name(str(k).lower())]
    if annotations_size(annotations) > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def validate_finalizer_name(name: str, path: PathLike, *, kube: bool = True) -> list[Cause]:
    """A qualified name; for built-in kinds an unprefixed name must also be a standard one."""
    causes = [invalid_value(path, name, m) for m in is_qualified_name(name)]
    if kube and "/" not in name and name not in STANDARD_FINALIZERS:
        causes.append(invalid_value(path, name, "name is neither a standard finalizer name nor is it fully qualified"))
    return causes


def validate_finalizers(finalizers: Any, path: PathLike, *, kube: bool = True) -> list[Cause]:
    causes: list[Cause] = []
    if finalizers is None:
        return causes
    if not isinstance(finalizers, list):
        return [invalid_value(path, finalizers, "must be a list of strings")]
    fp = FieldPath(str(path))
    for f in finalizers:
        causes += [invalid_value(path, f, m) for m in is_qualified_name(str(f))]
    if FINALIZER_ORPHAN in finalizers and FINALIZER_DELETE_DEPENDENTS in finalizers:
        causes.append(invalid_value(path, [str(f) for f in finalizers],
                                    f"finalizer {FINALIZER_ORPHAN} and {FINALIZER_DELETE_DEPENDENTS} cannot be both set"))
    if kube:
        # kube-apiserver runs its own finalizer check on top of apimachinery's, per index.
        for i, f in enumerate(finalizers):
            causes += validate_finalizer_name(str(f), fp.index(i), kube=True)
    return causes


def validate_no_new_finalizers(new: Any, old: Any, path: PathLike) -> list[Cause]:
    extra = sorted(set(new or ()) - set(old or ()))
    if not extra:
        return []
    return [forbidden(path, "no new finalizers can be added if the object is being deleted, found new finalizers "
                      + go_value([str(f) for f in extra]))]


def validate_owner_references(refs: Any, path: PathLike) -> list[Cause]:
    """``ValidateOwnerReferences``: each needs apiVersion, kind, name, uid; one controller at most."""
    causes: list[Cause] = []
    if refs is None:
        return causes
    if not isinstance(refs, list):
        return [invalid_value(path, refs, "must be a list")]
    fp = FieldPath(str(path))
    controller = ""
    for ref in refs:
        ref = ref if isinstance(ref, Mapping) else {}
        api_version = str(ref.get("apiVersion") or "")
        kind = str(ref.get("kind") or "")
        version = api_version.rpartition("/")[2]
        if not version:
            causes.append(invalid_value(fp.child("apiVersion"), api_version, "version must not be empty"))
        if not kind:
            causes.append(invalid_value(fp.child("kind"), kind, "must not be empty"))
        if not ref.get("name"):
            causes.append(invalid_value(fp.child("name"), str(ref.get("name") or ""), "must not be empty"))
        if not ref.get("uid"):
            causes.append(invalid_value(fp.child("uid"), str(ref.get("uid") or ""), "must not be empty"))
        if api_version == "v1" and kind == "Event":
            causes.append(invalid_value(path, GoRepr(_owner_ref_repr(ref)), "/v1, Kind=Event is disallowed from "
                                        "being an owner"))
        if ref.get("controller") is True:
            current = f"{kind}/{ref.get('name') or ''}"
            if controller:
                causes.append(invalid_value(path, GoRepr("[]v1.OwnerReference{...}"),
                                            'Only one reference can have Controller set to true. Found "true" in '
                                            f"references for {controller} and {current}"))
            else:
                controller = current
    return causes


def _owner_ref_repr(ref: Mapping[str, Any]) -> str:
    return (f"v1.OwnerReference{{APIVersion:{go_quote(str(ref.get('apiVersion') or ''))}, "
            f"Kind:{go_quote(str(ref.get('kind') or ''))}, Name:{go_quote(str(ref.get('name') or ''))}, "
            f"UID:{go_quote(str(ref.get('uid') or ''))}}}")


# -- ObjectMeta ---------------------------------------------------------------------------


def _meta_of(obj_or_meta: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept either a whole object (it has a ``metadata`` map) or the metadata map itself."""
    md = obj_or_meta.get("metadata")
    return md if isinstance(md, Mapping) else obj_or_meta


def validate_object_meta(
    obj: Mapping[str, Any],
    *,
    namespaced: bool,
    name_fn: NameValidator | None = None,
    path: PathLike = METADATA,
    kube_finalizers: bool = True,
) -> list[Cause]:
    """ObjectMeta checks on create (``ValidateObjectMeta``).

    ``obj`` is the object (or its metadata map). ``name_fn`` checks the name's format;
    leave it None when the kind's strategy checks the name itself (every
    :class:`~atoll.api.strategies.Strategy` does, with the kind's own rule), so the
    two lists can be concatenated without repeating a cause. ``kube_finalizers``
    applies the built-in rule that an unprefixed finalizer must be a standard one
    (custom resources only need qualified names).
    """
    md = _meta_of(obj)
    fp = FieldPath(str(path))
    causes: list[Cause] = []
    generate_name = md.get("generateName") or ""
    name = md.get("name") or ""
    if generate_name and name_fn is not None:
        causes += [invalid_value(fp.child("generateName"), generate_name, m) for m in name_fn(str(generate_name), True)]
    if not name:
        causes.append(required(fp.child("name"), "name or generateName is required"))
    elif name_fn is not None:
        causes += [invalid_value(fp.child("name"), name, m) for m in name_fn(str(name), False)]
    namespace = md.get("namespace") or ""
    if namespaced:
        if not namespace:
            causes.append(required(fp.child("namespace")))
        else:
            causes += [invalid_value(fp.child("namespace"), namespace, m)
                       for m in validate_namespace_name(str(namespace))]
    elif namespace:
        causes.append(forbidden(fp.child("namespace"), "not allowed on this type"))
    causes += non_negative(fp.child("generation"), md.get("generation"))
    causes += _validate_meta_maps(md, fp, kube_finalizers=kube_finalizers)
    return causes


def _validate_meta_maps(md: Mapping[str, Any], fp: FieldPath, *, kube_finalizers: bool) -> list[Cause]:
    causes = validate_labels(md.get("labels"), fp.child("labels"))
    causes += validate_annotations(md.get("annotations"), fp.child("annotations"))
    causes += validate_owner_references(md.get("ownerReferences"), fp.child("ownerReferences"))
    causes += validate_finalizers(md.get("finalizers"), fp.child("finalizers"), kube=kube_finalizers)
    return causes


def validate_object_meta_update(
    new: Mapping[str, Any],
    old: Mapping[str, Any],
    *,
    namespaced: bool = True,
    path: PathLike = METADATA,
    kube_finalizers: bool = True,
) -> list[Cause]:
    """ObjectMeta checks on update (``ValidateObjectMetaUpdate``).

    name, namespace, uid, creationTimestamp, deletionTimestamp and
    deletionGracePeriodSeconds may not change; generation may not go down; no finalizer
    may be added once deletion started; the new labels/annotations/ownerReferences/
    finalizers must be valid. ``resourceVersion`` is the server's business (optimistic
    concurrency), so it is not checked here. ``namespaced`` is accepted for symmetry with
    :func:`validate_object_meta`.
    """
    del namespaced
    nmd, omd = _meta_of(new), _meta_of(old)
    fp = FieldPath(str(path))
    causes: list[Cause] = []
    if omd.get("deletionTimestamp"):
        causes += validate_no_new_finalizers(nmd.get("finalizers"), omd.get("finalizers"), fp.child("finalizers"))
    new_gen, old_gen = nmd.get("generation") or 0, omd.get("generation") or 0
    if isinstance(new_gen, int) and isinstance(old_gen, int) and new_gen < old_gen:
        causes.append(invalid_value(fp.child("generation"), new_gen, "must not be decremented"))
    for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
        new_value, old_value = nmd.get(key), omd.get(key)
        if key in ("name", "namespace", "uid"):
            new_value, old_value = new_value or "", old_value or ""
        causes += immutable(fp.child(key), new_value, old_value)
    causes += _validate_meta_maps(nmd, fp, kube_finalizers=kube_finalizers)
    return causes


__all__ = [
    "DNS1035_LABEL_MAX_LENGTH",
    "DNS1123_LABEL_MAX_LENGTH",
    "DNS1123_SUBDOMAIN_MAX_LENGTH",
    "FIELD_IMMUTABLE",
    "IS_NEGATIVE",
    "LABEL_VALUE_MAX_LENGTH",
    "METADATA",
    "STANDARD_FINALIZERS",
    "TOTAL_ANNOTATION_SIZE_LIMIT",
    "Cause",
    "FieldPath",
    "GoRepr",
    "NameValidator",
    "annotations_size",
    "duplicate",
    "forbidden",
    "generate_name",
    "get_path",
    "go_quote",
    "go_value",
    "immutable",
    "invalid_value",
    "is_config_map_key",
    "is_dns1035_label",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_env_var_name",
    "is_qualified_name",
    "is_valid_ip",
    "is_valid_label_value",
    "is_valid_port_name",
    "is_valid_port_num",
    "label_selector_repr",
    "metadata_of",
    "name_is_dns1035_label",
    "name_is_dns_label",
    "name_is_dns_subdomain",
    "new_uid",
    "non_negative",
    "not_found",
    "not_supported",
    "now_rfc3339",
    "now_rfc3339_micro",
    "parse_quantity",
    "parse_rfc3339",
    "random_suffix",
    "required",
    "string_map",
    "too_long",
    "too_many",
    "validate_annotations",
    "validate_finalizer_name",
    "validate_finalizers",
    "validate_label_name",
    "validate_labels",
    "validate_namespace_name",
    "validate_no_new_finalizers",
    "validate_object_meta",
    "validate_object_meta_update",
    "validate_owner_references",
    "validate_path_segment_name",
]
