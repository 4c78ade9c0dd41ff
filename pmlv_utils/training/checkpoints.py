"""Checkpoints, early stopping and the resumable training state (``checkpoints/`` of a job dir).

checkpoints/best.keras    the weights with the best val_accuracy so far
checkpoints/last.keras    the model (and optimizer) after the last finished epoch
checkpoints/state.json    epochs done, best epoch, early-stopping counter, history, settings
"""

from __future__ import annotations

import os

import keras

from .. import safe_io

CHECKPOINT_DIR = "checkpoints"
BEST, LAST, STATE = "best.keras", "last.keras", "state.json"


def checkpoint_dir(job_dir: str | os.PathLike) -> str:
    """``<job_dir>/checkpoints``."""
    return os.path.join(str(job_dir), CHECKPOINT_DIR)


def new_state(settings: dict) -> dict:
    """The state of a run that has not trained yet."""
    return dict(
        epochs_done=0,
        best_epoch=None,
        best_val_accuracy=None,
        wait=0,
        stopped_early=False,
        history={},
        settings=settings,
    )


def load_state(job_dir: str | os.PathLike) -> dict | None:
    """``checkpoints/state.json`` of a job dir, or None."""
    path = os.path.join(checkpoint_dir(job_dir), STATE)
    if not os.path.exists(path):
        return None
    return safe_io.read_json(path)


def save_model_atomic(model: keras.Model, path: str) -> None:
    """``model.save(path)`` through a temporary file, so ``path`` is never half written.

    The temporary name ends in ``.keras`` too: Keras 3 refuses to save to other suffixes.
    """
    tmp = path + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


class CheckpointAndEarlyStop(keras.callbacks.Callback):
    """Saves best/last checkpoints and a resumable state; stops after ``patience``
    epochs without a better val_accuracy (ties broken by val_loss).

    Keras' own ModelCheckpoint + EarlyStopping do the first and the last, but their
    counters restart at zero on every ``fit`` call, so a resumed run would forget how
    long it had been waiting. Here the whole state is in ``state.json``.
    """

    def __init__(self, ckpt_dir: str, patience: int, state: dict, log=print):
        super().__init__()
        self.ckpt_dir, self.patience, self.state, self.log = ckpt_dir, patience, state, log

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        s = self.state
        for key, value in logs.items():
            s["history"].setdefault(key, []).append(float(value))
        s["epochs_done"] = epoch + 1
        if self._is_better(logs):
            s.update(
                best_val_accuracy=float(logs.get("val_accuracy", float("nan"))),
                best_val_loss=float(logs.get("val_loss", float("nan"))),
                best_epoch=epoch + 1,
                wait=0,
            )
            save_model_atomic(self.model, os.path.join(self.ckpt_dir, BEST))
        else:
            s["wait"] += 1
        if s["wait"] >= self.patience:
            s["stopped_early"] = True
            self.model.stop_training = True
            s["stop_reason"] = (
                f"early stop after epoch {epoch + 1}: no better val_accuracy than "
                f"{s['best_val_accuracy']:.4f} (epoch {s['best_epoch']}) for "
                f"{self.patience} epochs (patience)"
            )
            self.log(s["stop_reason"])
        # last.keras before state.json: the state never points past the saved model
        save_model_atomic(self.model, os.path.join(self.ckpt_dir, LAST))
        safe_io.write_json(os.path.join(self.ckpt_dir, STATE), s)

    def _is_better(self, logs: dict) -> bool:
        """Higher val_accuracy, or the same with a lower val_loss (small validation sets tie
        often, and a tie should not count as "no progress")."""
        s = self.state
        val = float(logs.get("val_accuracy", float("nan")))
        val_loss = float(logs.get("val_loss", float("nan")))
        if s["best_val_accuracy"] is None:
            return True
        return (val, -val_loss) > (s["best_val_accuracy"], -s.get("best_val_loss", float("inf")))
