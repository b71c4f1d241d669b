"""Keras 3 models with one save hazard each, in an importable module (for lint/roundtrip tests)."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras


class Unregistered(keras.layers.Layer):
    def __init__(self, factor: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor


class ForgetsOffset(keras.layers.Layer):
    """get_config() misses `offset`: the reloaded layer gets offset=0.0."""

    def __init__(self, factor: float = 2.0, offset: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.factor, self.offset = factor, offset

    def call(self, x):
        return x * self.factor + self.offset

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor)
        return config


class TakesObject(keras.layers.Layer):
    def __init__(self, helper=None, **kwargs):
        super().__init__(**kwargs)
        self.helper = helper

    def call(self, x):
        return x


@keras.saving.register_keras_serializable(package="ckd")
class Registered(keras.layers.Layer):
    def __init__(self, factor: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor


def _model(*extra):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), *extra])


def clean():
    return _model(Registered(3.0))


def unregistered():
    return _model(Unregistered(3.0))


def forgets_offset():
    return _model(ForgetsOffset(3.0, offset=1.0))


def lambda_model():
    return _model(keras.layers.Lambda(lambda t: t * 2))


def unbuilt():
    return keras.Sequential([keras.layers.Dense(3)])
