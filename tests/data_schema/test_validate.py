"""Bad input: each gives a clear message naming file, row and column; every problem is reported."""

from __future__ import annotations

import pandas as pd
import pytest

from data_schema import TableValidationError, load_table, validate_file, validate_frame
from tests.examples import examples

GOOD_BNP = (
    "result_id,patient_id,collected_at,bnp_ng_l\n"
    "r1,p1,2012-03-04 05:06:07,350\n"
    "r2,p2,2012-03-05T06:00:00,99.5\n"
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def only(problems):
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def test_good_csv_loads_typed(tmp_path):
    df = load_table(write(tmp_path, "bnp_results.csv", GOOD_BNP))
    assert df["collected_at"].dtype == "datetime64[ns]"
    assert df["bnp_ng_l"].tolist() == [350.0, 99.5]


def test_missing_column(tmp_path):
    path = write(tmp_path, "bnp_results.csv", "result_id,patient_id,collected_at\nr1,p1,2012-01-01\n")
    p = only(validate_file(path))
    assert (p.file, p.row, p.column) == (str(path), None, "bnp_ng_l")
    assert "missing column" in str(p) and "bnp_results.csv" in str(p)


def test_a_column_named_twice_is_named_as_written_not_as_pandas_renames_it(tmp_path):
    path = write(tmp_path, "bnp_results.csv",
                 "result_id,patient_id,collected_at,bnp_ng_l,bnp_ng_l\nr1,p1,2012-01-01,50,99999\n")
    p = only(validate_file(path))
    assert (p.file, p.row, p.column) == (str(path), None, "bnp_ng_l")
    assert "names this column 2 times (columns 4 and 5)" in p.message and "bnp_ng_l.1" not in str(p)


def test_wrong_type_names_row_and_column(tmp_path):
    path = write(tmp_path, "bnp_results.csv", GOOD_BNP + "r3,p3,2012-01-01,high\n")
    p = only(validate_file(path))
    assert (p.row, p.column, p.value) == (3, "bnp_ng_l", "high")
    assert "row 3 (line 4)" in str(p) and "not a finite number" in str(p)


def test_duplicate_primary_key(tmp_path):
    path = write(tmp_path, "bnp_results.csv", GOOD_BNP + "r1,p9,2012-01-01,500\n")
    p = only(validate_file(path))
    assert (p.row, p.column) == (3, "result_id")
    assert "duplicate primary key (result_id='r1'); first in row 1" in p.message


def test_duplicate_composite_key():
    df = examples()["reader_assessments"]
    df = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    p = only(validate_frame(df, "reader_assessments"))
    assert p.row == 4 and "reader='A', round=1, gvr_id='g1', feature='cardiomegaly'" in p.message


@pytest.mark.parametrize("value", ["-5", "0"])
def test_non_positive_bnp(tmp_path, value):
    path = write(tmp_path, "bnp_results.csv", GOOD_BNP + f"r3,p3,2012-01-01,{value}\n")
    p = only(validate_file(path))
    assert (p.row, p.column, p.message) == (3, "bnp_ng_l", "must be > 0")


@pytest.mark.parametrize("age", ["-1", "120.5", "200"])
def test_age_outside_0_120(tmp_path, age):
    path = write(tmp_path, "patients.csv", f"patient_id,sex,age_years\np1,F,74\np2,M,{age}\n")
    p = only(validate_file(path))
    assert (p.row, p.column) == (2, "age_years")
    assert "must be" in p.message


def test_ages_at_the_bounds_are_valid(tmp_path):
    path = write(tmp_path, "patients.csv", "patient_id,sex,age_years\np1,F,0\np2,M,120\n")
    assert validate_file(path) == []


@pytest.mark.parametrize("stamp", ["yesterday", "2012-13-01", "04/03/2012 25:00", "2012-03-04T05:06:07+02:00"])
def test_unparseable_timestamp(tmp_path, stamp):
    path = write(tmp_path, "bnp_results.csv", GOOD_BNP + f"r3,p3,{stamp},120\n")
    p = only(validate_file(path))
    assert (p.row, p.column) == (3, "collected_at")
    assert "timestamp" in p.message


@pytest.mark.parametrize("bad", ["../x.png", "/etc/passwd", "images/../../x.png", "C:/x.png", "images\\..\\x.png"])
def test_image_path_escaping_the_bundle(bad):
    df = examples()["radiographs"]
    df.loc[1, "image_path"] = bad
    p = only(validate_frame(df, "radiographs", file="radiographs.parquet"))
    assert (p.row, p.column, p.value) == (2, "image_path", bad)


def test_truncated_parquet(tmp_path):
    path = tmp_path / "patients.parquet"
    examples()["patients"].to_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    p = only(validate_file(path))
    assert p.file == str(path) and p.row is None and "not a readable Parquet file" in p.message
    with pytest.raises(TableValidationError, match="patients.parquet"):
        load_table(path)


def test_parquet_wrong_dtype_is_a_column_problem(tmp_path):
    df = examples()["patients"]
    df["age_years"] = df["age_years"].astype(str)
    path = tmp_path / "patients.parquet"
    df.to_parquet(path)
    p = only(validate_file(path))
    assert (p.row, p.column) == (None, "age_years") and "expected float64" in p.message


def test_every_problem_is_reported_not_only_the_first(tmp_path):
    text = (
        "result_id,patient_id,collected_at,bnp_ng_l,extra\n"
        "r1,p1,2012-01-01,350,x\n"
        "r1,p2,2012-13-01,-5,x\n"
        "r3,,yesterday,abc,x\n"
        "r4,bad id,2012-01-01,0,x\n"
    )
    problems = validate_file(write(tmp_path, "bnp_results.csv", text))
    where = {(p.row, p.column) for p in problems}
    assert where == {
        (None, "extra"),
        (2, "result_id"), (2, "collected_at"), (2, "bnp_ng_l"),
        (3, "patient_id"), (3, "collected_at"), (3, "bnp_ng_l"),
        (4, "patient_id"), (4, "bnp_ng_l"),
    }
    assert len(problems) == len(where)


def test_text_none_and_na_stay_text(tmp_path):
    # pandas would turn "None" and "NA" into missing values; only the empty string is missing here.
    path = write(tmp_path, "patients.csv", "patient_id,sex,age_years\nNone,F,70\nNA,M,60\n")
    df = load_table(path)
    assert df["patient_id"].tolist() == ["None", "NA"]


def test_empty_cell_is_missing(tmp_path):
    path = write(tmp_path, "patients.csv", "patient_id,sex,age_years\np1,,70\n")
    p = only(validate_file(path))
    assert (p.row, p.column, p.message) == (1, "sex", "missing value")


def test_disallowed_category(tmp_path):
    path = write(tmp_path, "patients.csv", "patient_id,sex,age_years\np1,female,70\n")
    p = only(validate_file(path))
    assert p.column == "sex" and "must be one of ['F', 'M']" in p.message


def test_patient_on_both_sides_of_the_split():
    df = examples()["splits"]
    df.loc[2, "patient_id"] = "p1"  # p1 now has a train and a test radiograph
    problems = validate_frame(df, "splits")
    assert [p.row for p in problems] == [1, 2, 3]
    assert all("both the train and the test set" in p.message for p in problems)


def test_unparseable_bool_and_int(tmp_path):
    text = "image_id,encoder_id,latents_path,row\ni1,e1,a.npy,zero\n"
    p = only(validate_file(write(tmp_path, "latents_index.csv", text)))
    assert (p.row, p.column, p.message) == (1, "row", "not an integer")


def test_unknown_file_name_needs_a_schema(tmp_path):
    path = write(tmp_path, "stuff.csv", "a\n1\n")
    assert "cannot tell the schema" in only(validate_file(path)).message
    assert validate_file(write(tmp_path, "p.csv", "patient_id,sex,age_years\np1,F,1\n"), "patients") == []


def test_error_message_lists_all_problems():
    df = examples()["patients"]
    df["age_years"] = [-1.0, 130.0, 50.0]
    error = TableValidationError(validate_frame(df, "patients", file="patients.parquet"))
    assert len(error.problems) == 2
    text = str(error)
    assert text.startswith("2 problem(s):")
    assert "patients.parquet, row 1, column 'age_years': must be >= 0" in text
    assert "patients.parquet, row 2, column 'age_years': must be <= 120" in text


def test_a_trailing_comma_on_every_row_is_not_a_value(tmp_path):
    """Excel writes one; read as an index column it shifted every column and crashed the row numbers."""
    header, *rows = GOOD_BNP.splitlines()
    path = write(tmp_path, "bnp_results.csv", header + "\n" + "".join(f"{row},\n" for row in rows))
    assert validate_file(path) == []
    assert load_table(path)["result_id"].tolist() == ["r1", "r2"]
    (tmp_path / "both").mkdir()
    both = write(tmp_path, "both/bnp_results.csv", "".join(f"{line},\n" for line in GOOD_BNP.splitlines()))
    assert validate_file(both) == []  # the header's trailing comma too
    (tmp_path / "more").mkdir()
    p = only(validate_file(write(tmp_path, "more/bnp_results.csv", GOOD_BNP + "r3,p3,2012-01-01,500,7\n")))
    assert (p.row, p.value) == (3, "7") and "5 values, but the header names 4 columns" in p.message


def test_a_repeated_key_is_found_beside_a_missing_one():
    df = pd.DataFrame({"patient_id": ["p1", "p1", None], "sex": ["F", "F", "M"], "age_years": [1.0, 2.0, 3.0]})
    problems = validate_frame(df, "patients")
    assert [(p.row, p.message.split(";")[0]) for p in problems] == [
        (2, "duplicate primary key (patient_id='p1')"), (3, "missing value")]


def test_a_column_given_twice_is_one_problem():
    df = pd.DataFrame([["p1", "F", 1.0]], columns=["patient_id", "sex", "patient_id"])
    assert [(p.column, p.message) for p in validate_frame(df, "patients")] == [("patient_id", "column given more than once")]


def test_an_integer_beyond_64_bits_is_refused_not_wrapped(tmp_path):
    good = examples()["radiographs"]
    text = good.to_csv(index=False).replace(f",{good['image_index'].iloc[0]},", ",99999999999999999999,", 1)
    path = write(tmp_path, "radiographs.csv", text)
    p = only(validate_file(path))
    assert (p.row, p.column, p.value) == (1, "image_index", "99999999999999999999")
    assert "not an integer within the 64-bit range" in p.message


def test_a_blank_line_does_not_shift_the_row_of_an_extra_value(tmp_path):
    header, first, second = GOOD_BNP.splitlines()
    p = only(validate_file(write(tmp_path, "bnp_results.csv", f"{header}\n{first}\n\n{second},7\n")))
    assert (p.row, p.value) == (2, "7")


def test_a_rule_over_missing_columns_is_not_said_to_be_broken(tmp_path):
    """splits.csv with neither of its columns was first reported as "violates: No patient has radiographs
    in both the train and the test set", which was false: the columns are the problem."""
    path = write(tmp_path, "splits.csv", "a,b\n1,2\n")
    problems = validate_file(path)
    assert problems and not any("violates" in p.message for p in problems), "\n".join(map(str, problems))
    assert {p.column for p in problems if "missing column" in p.message} >= {"patient_id", "set"}
    df = examples()["splits"]
    df.loc[2, "patient_id"] = "p1"  # with its columns present the rule is still judged
    assert any("both the train and the test set" in p.message for p in validate_frame(df, "splits"))
