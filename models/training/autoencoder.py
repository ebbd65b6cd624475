"""Building and training the LSTM autoencoder (Keras), and its conversion to TensorFlow Lite for
serving (``models.lstm_ae``)."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from models.lstm_ae import DEFAULT_CHUNK, LstmAeConfig, LstmAutoencoder, _keras, to_sequences

log = logging.getLogger(__name__)


def build_model(n_features: int, config: LstmAeConfig):
    """Encoder LSTM(units...) -> LSTM(latent) -> RepeatVector(timesteps) -> mirrored LSTM decoder ->
    TimeDistributed(Dense(n_features))."""
    tf = _keras()
    layers = tf.keras.layers
    unroll = config.timesteps <= 8  # short sequences: an unrolled graph beats the while loop
    inputs = tf.keras.Input((config.timesteps, n_features), name="flows")
    hidden = inputs
    for units in config.units:
        hidden = layers.LSTM(units, return_sequences=True, unroll=unroll)(hidden)
    hidden = layers.LSTM(config.latent, name="latent", unroll=unroll)(hidden)
    hidden = layers.RepeatVector(config.timesteps)(hidden)
    for units in reversed(config.units):
        hidden = layers.LSTM(units, return_sequences=True, unroll=unroll)(hidden)
    outputs = layers.TimeDistributed(layers.Dense(n_features), name="reconstruction")(hidden)
    return tf.keras.Model(inputs, outputs, name="lstm_autoencoder")



def to_tflite(model: Any) -> bytes:
    """The Keras model as a TensorFlow Lite flatbuffer (variables frozen, batch dimension free)."""
    tf = _keras()
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()



def train_lstm_ae(benign_train: np.ndarray, config: LstmAeConfig = LstmAeConfig(),
                  chunk_size: int = DEFAULT_CHUNK) -> LstmAutoencoder:
    """Fit on preprocessed benign training rows (n, inputs), or, for a sequential model, on benign
    sequences (n, timesteps, inputs + 1) from :func:`models.sequences.sequence_inputs`; early
    stopping on a seeded holdout of them."""
    tf = _keras()
    tf.keras.utils.set_random_seed(config.seed)
    x = np.asarray(benign_train, dtype=np.float32)
    if (x.ndim == 3) != config.sequential or (x.ndim == 3 and x.shape[1] != config.timesteps):
        raise ValueError(f"timesteps {config.timesteps} needs {'sequences' if config.sequential else 'rows'}; "
                         f"got an array of shape {x.shape}")
    order = np.random.default_rng(config.seed).permutation(len(x))
    n_holdout = max(1, int(round(config.validation_fraction * len(x))))
    as_input = (lambda rows: rows) if config.sequential else (lambda rows: to_sequences(rows, config.timesteps))
    fit_x, hold_x = as_input(x[order[n_holdout:]]), as_input(x[order[:n_holdout]])
    model = build_model(x.shape[-1], config)
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate), loss="mse")
    stop = tf.keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True)
    history = model.fit(fit_x, fit_x, validation_data=(hold_x, hold_x), epochs=config.epochs,
                        batch_size=config.batch_size, callbacks=[stop], verbose=0, shuffle=True)
    hist = {key: [float(v) for v in values] for key, values in history.history.items()}
    log.info("LSTM AE trained: %d epochs, best holdout loss %.5f", len(hist["loss"]), min(hist["val_loss"]))
    return LstmAutoencoder(model=model, config=config, chunk_size=chunk_size, history=hist)
