"""is_equivalent: the equivalence table, pre-checks, normalisation, and that nothing is eval'd."""

import threading

import pytest

from megathink.errors import DataError
from megathink.rewards import MAX_ANSWER_CHARS, is_equivalent, precheck, strip_string
from megathink.rewards.normalize import parse_number, split_list

EQUAL = [
    ("42", "42"),
    ("-7", "-7"),
    ("- 7", "-7"),
    ("007", "7"),
    ("1,000", "1000"),
    ("1{,}000", "1000"),
    ("1\\,000", "1000"),
    ("12,345,678", "12345678"),
    ("\\frac{1}{2}", "0.5"),
    ("\\frac12", "\\frac{1}{2}"),
    ("\\dfrac{1}{2}", "1/2"),
    ("\\tfrac{3}{4}", "0.75"),
    ("\\frac1{2}", ".5"),
    ("-\\frac{1}{2}", "-0.5"),
    ("\\frac{-1}{2}", "-.5"),
    ("2/4", "\\frac{1}{2}"),
    ("0.50", ".5"),
    ("3.14159", "3.1416"),
    ("0.3333", "\\frac{1}{3}"),
    ("50\\%", "50"),
    ("50%", "50"),
    ("\\$5.00", "5"),
    ("5\\text{ cm}", "5"),
    ("5 \\text{ cm}^2", "5"),
    ("5 inches", "5"),
    ("90^\\circ", "90"),
    ("90^{\\circ}", "90"),
    ("x = 5", "5"),
    ("5", "x=5"),
    ("\\theta = \\frac{\\pi}{4}", "\\frac{\\pi}{4}"),
    ("(1, 2)", "(1,2)"),
    ("\\left( 1, \\frac{1}{2} \\right)", "(1, 0.5)"),
    ("[2, 5)", "[2,5)"),
    ("(-\\infty, 3]", "(-\\infty,3]"),
    ("\\{1, 2, 3\\}", "\\{3, 2, 1\\}"),
    ("2, -3", "-3, 2"),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"),
    ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt2}{2}"),
    ("2\\sqrt{3}", "2 \\sqrt 3"),
    ("\\pi/2", "\\frac{\\pi}{2}"),
    ("2\\pi", "2 \\pi"),
    ("x + 1", "1 + x"),
    ("\\text{Monday}", "Monday"),
    ("monday", "Monday"),
    ("\\text{(B)}", "B"),
    ("5.", "5"),
    ("\\left[ 0, 1 \\right]", "[0,1]"),
    ("10^{3}", "1000"),
]

NOT_EQUAL = [
    ("41", "42"),
    ("-7", "7"),
    ("10001", "10000"),
    ("3", "3.01"),
    ("\\frac{1}{3}", "0.33"),
    ("\\frac{1}{2}", "\\frac{1}{3}"),
    ("0.5", "5"),
    ("50\\%", "0.5"),
    ("(1, 2)", "(2, 1)"),
    ("(1, 2)", "[1, 2]"),
    ("(1, 2]", "(1, 2)"),
    ("(1, 2, 3)", "(1, 2)"),
    ("\\sqrt{3}", "\\sqrt{2}"),
    ("\\pi", "3.14"),
    ("2x", "x"),
    ("y = 5", "x = 5"),
    ("Dynamo", "Monday"),
    ("no", "on"),
    ("A", "B"),
    ("", "5"),
    ("   ", "5"),
    ("\\frac{1}{", "\\frac{1}{2}"),
    ("5 + ", "5"),
    ("1e3", "1000"),
    ("\\infty", "-\\infty"),
]


@pytest.mark.parametrize(("pred", "ref"), EQUAL)
def test_equal_pairs(pred, ref):
    assert is_equivalent(pred, ref) is True


@pytest.mark.parametrize(("pred", "ref"), NOT_EQUAL)
def test_unequal_pairs(pred, ref):
    assert is_equivalent(pred, ref) is False


def test_table_is_large_and_symmetric_for_numbers():
    assert len(EQUAL) + len(NOT_EQUAL) >= 40
    for pred, ref in [("\\frac{1}{2}", "0.5"), ("1,000", "1000"), ("(1, 2)", "(1,2)")]:
        assert is_equivalent(ref, pred)


def test_strip_string_examples():
    assert strip_string("\\left( 1, \\dfrac12 \\right).") == "(1,\\frac{1}{2})"
    assert strip_string("\\$ 1\\!,\\!000") == "1,000"
    assert strip_string("30^{\\circ}") == "30"
    assert strip_string("\\sqrt2") == "\\sqrt{2}"
    assert strip_string("7 \\text{ inches}") == "7"
    assert strip_string("\\text{east}") == "east"


def test_parse_number_and_split_list():
    assert parse_number("1,234.5").value == parse_number("1234.5").value
    assert parse_number("-\\frac{3}{6}").value == parse_number("-.5").value
    assert parse_number("1/0") is None
    assert parse_number("abc") is None
    assert parse_number("9" * 1000) is None
    assert split_list("(1,(2,3))").elements == ["1", "(2,3)"]
    assert split_list("\\frac{1,2}{3}") is None
    assert split_list("(1)+(2)") is None
    assert split_list("(1,2") is None


def test_precheck():
    assert precheck(" 5 ", "5") is True
    assert precheck("", "5") is False
    assert precheck("1" * (MAX_ANSWER_CHARS + 1), "1") is False
    long_ref = "1" * (MAX_ANSWER_CHARS + 5)
    assert precheck(long_ref, long_ref) is True
    assert precheck("1\x00", "1") is False
    assert precheck("{" * 60 + "}" * 60, "1") is False
    assert precheck("\\frac{1}{2}", "0.5") is None


def test_non_string_input_is_a_data_error():
    with pytest.raises(DataError):
        is_equivalent(5, "5")
    with pytest.raises(DataError):
        is_equivalent("5", None)


def test_answers_are_never_evaluated(tmp_path, monkeypatch):
    import builtins

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec must never be called by the grader")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    marker = tmp_path / "pwned"
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f"__import__(\"os\").system(\"touch {marker}\")",
        "().__class__.__base__.__subclasses__()",
        "lambda: 0",
    ]
    for payload in payloads:
        assert is_equivalent(payload, "0") is False
        assert is_equivalent("0", payload) is False
    assert not marker.exists()


def test_works_off_the_main_thread():
    verdicts = []
    thread = threading.Thread(target=lambda: verdicts.append(is_equivalent("\\frac{\\pi}{2}", "\\pi/2")))
    thread.start()
    thread.join(30)
    assert verdicts == [True]
