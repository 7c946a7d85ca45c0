from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifiers.data import WEAK, DataError, load_examples


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    write(
        tmp_path,
        "davidson/labeled_data.csv",
        ",count,hate_speech,offensive_language,neither,class,tweet\n"
        "0,3,3,0,0,0,hate tweet\n1,3,0,3,0,1,offensive tweet\n2,3,0,0,3,2,nice tweet\n",
    )
    header = "id\ttweet\tsubtask_a\tsubtask_b\tsubtask_c\n"
    write(tmp_path, "olid/olid-training-v1.0.tsv", header + '1\t@USER rude "quote\tOFF\tTIN\tIND\n')
    write(
        tmp_path, "olid/olid_test_levela_merged.tsv", header + "2\tpolite words\tNOT\tNULL\tNULL\n"
    )
    write(
        tmp_path,
        "hateval/hateval_train_val.csv",
        "split,text,label,label_name\ntrain,hateful one,1,hate\nval,neutral one,0,not-hate\n",
    )
    write(
        tmp_path,
        "hatexplain_derived/final_hateXplain.csv",
        ",comment,label,Race\n0,<user> normal words,normal,x\n1,slur words,hatespeech,x\n",
    )
    write(tmp_path, "sms_spam/SMSSpamCollection", "Label\tSMS\nham\tsee you\nspam\tWIN cash\n")
    jig = "comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate\n"
    write(tmp_path, "jigsaw_samples/ibm_max_test_examples.csv", jig + "you suck,0,0,0,0,1,0\n")
    write(
        tmp_path,
        "jigsaw_samples/hurelyyu_train_sample.csv",
        "id," + jig + "a,fine text,0,0,0,0,0,0\n",
    )
    convabuse = [
        {"split": "train", "text": "you are gay", "abusive": 1, "n_annotators": 3},
        {"split": "valid", "text": "are you a thinking machine?", "abusive": 0},
        {"split": "test", "text": "shut up bot", "abusive": 1},
    ]
    write(
        tmp_path,
        "convabuse/convabuse_splits.jsonl",
        "".join(json.dumps(row) + "\n" for row in convabuse),
    )
    youtube = [
        {"text": "check my channel &amp; subscribe\ufeff", "CLASS": 1, "video": "Psy"},
        {"text": "Your a fucking bitch", "CLASS": 0, "video": "Shakira"},
        {"text": "nice song", "CLASS": 0, "video": "KatyPerry"},
    ]
    write(
        tmp_path,
        "youtube_spam/youtube_spam_collection.jsonl",
        "".join(json.dumps(row) + "\n" for row in youtube),
    )
    return tmp_path


def test_labels_and_masks(data_dir: Path) -> None:
    by_text = {e.text: e for e in load_examples(data_dir)}
    hate = by_text["hate tweet"]
    assert hate.targets[:2] == (1.0, 1.0) and hate.weights == (1.0, 1.0, WEAK)
    assert by_text["offensive tweet"].targets[:2] == (1.0, 0.0)
    olid_off = by_text['@USER rude "quote']  # QUOTE_NONE keeps the quote
    assert olid_off.weights[:2] == (1.0, 0.0)  # OFF says nothing about hate
    assert by_text["polite words"].split == "test"
    assert (
        by_text["neutral one"].weights[:2] == (0.0, 1.0) and by_text["neutral one"].split == "test"
    )
    assert by_text["@user normal words"].targets == (0.0, 0.0, 0.0)
    spam = by_text["WIN cash"]
    assert spam.targets[2] == 1.0 and spam.weights == (0.0, 0.0, 1.0)
    assert by_text["you suck"].targets[0] == 1.0 and by_text["you suck"].split == "test"


def test_convabuse_labels_abuse_only_with_its_own_splits(data_dir: Path) -> None:
    by_text = {e.text: e for e in load_examples(data_dir) if e.dataset == "convabuse"}
    abusive = by_text["you are gay"]
    assert abusive.targets[0] == 1.0 and abusive.weights == (1.0, 0.0, 0.0)
    assert abusive.split == "train"
    assert by_text["are you a thinking machine?"].targets[0] == 0.0
    assert by_text["are you a thinking machine?"].split == "dev"
    assert by_text["shut up bot"].split == "test"


def test_youtube_is_spam_only_unescaped_and_split_by_video(data_dir: Path) -> None:
    by_text = {e.text: e for e in load_examples(data_dir) if e.dataset == "youtube"}
    spam = by_text["check my channel & subscribe"]  # entities unescaped, BOM dropped
    assert spam.targets[2] == 1.0 and spam.split == "train"
    profane_ham = by_text["Your a fucking bitch"]
    assert profane_ham.weights == (0.0, 0.0, 1.0)  # ham says nothing about toxicity
    assert profane_ham.split == "test" and by_text["nice song"].split == "dev"


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_examples(tmp_path / "absent")
    with pytest.raises(DataError, match=r"labeled_data\.csv"):
        load_examples(tmp_path)
