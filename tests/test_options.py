"""Every training option is declared once (training/options.py): the CLI, validation, config.yaml and
cnnlab.train(**kw) all come from that declaration."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest
import yaml

import cnnlab
from cnnlab.cli import build_parser, main
from cnnlab.errors import UserError
from cnnlab.training.config import load_config_file, resolve
from cnnlab.training.options import TrainConfig, add_arguments, flag


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p


def test_every_field_is_a_flag_with_its_help_and_choices():
    p = _train_parser()
    actions = {a.dest: a for a in p._actions}
    for f in fields(TrainConfig):
        a = actions[f.name]
        assert a.option_strings == [flag(f.name)] and a.help == f.metadata["help"]
        assert a.default is None  # so --config can fill what the flags leave out
        assert tuple(a.choices or ()) == tuple(f.metadata["choices"] or ())
    assert p.parse_args(["--lr", "0.1", "--epochs", "3", "--compile"]).__dict__ | {} == {
        **{f.name: None for f in fields(TrainConfig)}, "lr": 0.1, "epochs": 3, "compile": True}


def test_a_bad_choice_gets_argparse_s_usual_error(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["train", "--optimizer", "rmsprop"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--optimizer: invalid choice: 'rmsprop'" in err and "'sgd', 'adam', 'adamw'" in err


@pytest.mark.parametrize(("kw", "words"), [
    ({"optimizer": "rmsprop"}, "--optimizer 'rmsprop': choose one of sgd, adam, adamw"),
    ({"epochs": 0}, "--epochs 0: must be a whole number >= 1"),
    ({"lr": -1}, "--lr -1: must be a number > 0"),
    ({"val_split": 1.5}, "--val-split 1.5: must be a fraction"),
    ({"momentum": "fast"}, "--momentum 'fast': must be in [0, 1)"),
    ({"threads": 0}, "--threads 0: must be a whole number >= 1"),
])
def test_the_python_api_checks_the_same_declaration(kw, words):
    with pytest.raises(UserError, match=words.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        resolve(TrainConfig(**kw))


def test_unknown_keyword_is_refused():
    with pytest.raises(UserError, match="unknown training option 'learning_rate'"):
        cnnlab.train(learning_rate=0.1)


def test_config_yaml_round_trips(tmp_path):
    cfg = resolve(TrainConfig(model="lenet5", lr=0.02))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    assert TrainConfig(**load_config_file(path)) == cfg
    assert list(yaml.safe_load(path.read_text())) == [f.name for f in fields(TrainConfig)]


def test_version_is_the_package_metadata(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"cnnlab {version('cnnlab')}" == f"cnnlab {cnnlab.__version__}"


@pytest.mark.parametrize("kw, model", [
    ({"time": "20s"}, "fastcnn-small"), ({"time": "44s"}, "fastcnn-small"), ({"time": "45s"}, "fastcnn"),
    ({"time": "2m"}, "fastcnn"), ({}, "fastcnn"), ({"time": "20s", "model": "lenet5"}, "lenet5")])
def test_the_default_model_suits_the_time_budget(kw, model):
    from cnnlab.training.config import default_model

    assert default_model(TrainConfig(**kw)).model == model


@pytest.mark.parametrize("kw, style, kind", [
    ({}, "fit", "flip"), ({"time": "2m"}, "fit", "flip"), ({"time": "4m"}, "fit", "flip-shift"),
    ({"time": "1h"}, "mnist", "none"), ({"time": "5m", "augment": "flip"}, "fit", "flip"),
    ({"pretrained": True}, "resize", "photo")])
def test_auto_augmentation_suits_the_data_and_the_budget(kw, style, kind):
    from cnnlab.training.recipe import augment_kind, tta_kind

    cfg = TrainConfig(**{"augment": "auto", **kw})
    assert augment_kind(cfg, style) == kind
    assert tta_kind(cfg, kind) == ("flip" if kind in ("flip", "flip-shift") else "none")
