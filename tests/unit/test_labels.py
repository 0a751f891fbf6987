import pytest

from bus.labels import (
    parse_selector, selector_from_label_selector, selector_from_map, validate_label_key, validate_label_value,
)
from bus.models import LabelSelector


def test_docs_equality_and_set_based_examples():
    # https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/
    prod_fe = {"environment": "production", "tier": "frontend"}
    qa = {"environment": "qa", "tier": "backend"}
    dev = {"environment": "dev"}
    assert parse_selector("environment = production").matches(prod_fe)
    assert not parse_selector("environment = production").matches(qa)
    assert parse_selector("tier != frontend").matches(qa)
    assert parse_selector("tier != frontend").matches(dev)  # missing label satisfies !=
    assert parse_selector("environment=production,tier!=frontend").matches({"environment": "production"})
    assert not parse_selector("environment=production,tier!=frontend").matches(prod_fe)
    sel = parse_selector("environment in (production, qa)")
    assert sel.matches(prod_fe) and sel.matches(qa) and not sel.matches(dev)
    sel = parse_selector("tier notin (frontend, backend)")
    assert sel.matches(dev) and not sel.matches(qa)
    assert parse_selector("partition").matches({"partition": ""})
    assert not parse_selector("partition").matches(dev)
    assert parse_selector("!partition").matches(dev)
    assert parse_selector("environment==dev").matches(dev)
    assert parse_selector("replicas>2").matches({"replicas": "3"})
    assert not parse_selector("replicas<2").matches({"replicas": "3"})


def test_canonical_string_form_is_sorted_by_key():
    sel = parse_selector("tier!=db,app=web,env in (b,a),!legacy,present,k==v")
    assert str(sel) == "app=web,env in (a,b),k==v,!legacy,present,tier!=db"
    assert str(parse_selector(str(sel))) == str(sel)


def test_empty_selects_everything():
    for sel in (parse_selector(""), parse_selector("   "), selector_from_label_selector({}),
                selector_from_map(None), selector_from_map({})):
        assert sel.empty and sel.matches({"a": "b"}) and sel.matches(None)


def test_nil_label_selector_selects_nothing():
    sel = selector_from_label_selector(None)
    assert not sel.empty and not sel.matches({}) and not sel.matches({"a": "b"})


def test_label_selector_dict_and_model():
    d = {"matchLabels": {"app": "web"},
         "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                              {"key": "legacy", "operator": "DoesNotExist"},
                              {"key": "zone", "operator": "Exists"},
                              {"key": "env", "operator": "NotIn", "values": ["dev"]}]}
    for sel in (selector_from_label_selector(d), selector_from_label_selector(LabelSelector.model_validate(d))):
        assert str(sel) == "app=web,env notin (dev),!legacy,tier in (be,fe),zone"
        assert sel.matches({"app": "web", "tier": "fe", "zone": "a"})
        assert not sel.matches({"app": "web", "tier": "fe", "zone": "a", "legacy": "1"})
        assert not sel.matches({"app": "web", "tier": "fe", "zone": "a", "env": "dev"})
        assert not sel.matches({"app": "web", "tier": "db", "zone": "a"})
    with pytest.raises(ValueError, match="not a valid label selector operator"):
        selector_from_label_selector({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]})
    with pytest.raises(ValueError, match="can't be empty"):
        selector_from_label_selector({"matchExpressions": [{"key": "a", "operator": "In"}]})


def test_map_selector():
    sel = selector_from_map({"app": "nginx", "tier": "web"})
    assert str(sel) == "app=nginx,tier=web"
    assert sel.matches({"app": "nginx", "tier": "web", "x": "y"}) and not sel.matches({"app": "nginx"})


@pytest.mark.parametrize("bad", [
    "a in (x", "a in x", "a in ()", "!", "a b", "a=b=c", "a,,b", ",", "a=b,", "x>y", "a notin", "=a",
    "bad key!=x", "a=" + "x" * 64, "a in (b c)",
])
def test_syntax_errors_raise_value_error(bad):
    with pytest.raises(ValueError) as e:
        parse_selector(bad)
    assert str(e.value)


def test_label_key_and_value_validation():
    for ok in ("app", "app.kubernetes.io/name", "k8s-app", "A_b.c-D", "example.com/x", "a" * 63):
        assert validate_label_key(ok) is None, ok
    for bad, part in (("", "non-empty"), ("-app", "name part"), ("a" * 64, "63"), ("Example.com/x", "prefix"),
                      ("a/b/c", "qualified name"), ("/x", "prefix part must be non-empty"), ("x/", "non-empty")):
        err = validate_label_key(bad)
        assert err is not None and part in err, (bad, err)
    for ok in ("", "web", "v1.2_3-x", "A" * 63):
        assert validate_label_value(ok) is None
    assert "63" in validate_label_value("a" * 64)
    assert "a valid label must be an empty string" in validate_label_value("-web")
    assert validate_label_value("with space") is not None
