"""Which weights a run keeps, and when: the one place that writes a run's checkpoints and reads them back.

At each epoch's end `best.safetensors` is written when early stopping counts the epoch as an
improvement, `best_ema.safetensors` likewise for the EMA weights' own score (train.ema), and
`last.safetensors` (+ `last_ema.safetensors`) with the resumable state (members/resume.py)
always. A stop request writes `last` in the middle of an epoch, so `--resume` continues from that
very batch. With no run folder (a non-zero rank, a test, a benchmark) nothing is written.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from core.config import MemberConfig
from members.resume import TrainingState, restore_rng, save_state
from members.run_state import EpochOutputs, RunState
from modeling.checkpoint import save_weights

log = logging.getLogger("members")


@dataclass(frozen=True)
class Checkpoints:
    run_dir: Path | None      # None: nothing is written
    arch: str                 # recorded in every weights file's metadata
    ema_decay: float | None = None  # train.ema; None when the run keeps no EMA weights
    wandb_run: str | None = None  # saved with the state, so a resumed run continues the same wandb run

    @classmethod
    def of(cls, config: MemberConfig, run_dir: Path | None = None, wandb_run: str | None = None) -> Checkpoints:
        return cls(run_dir, config.model.arch, config.train.ema, wandb_run)

    def epoch_end(self, run: RunState, epoch: int, metrics: dict, outputs: EpochOutputs, improved: bool,
                  ema_improved: bool) -> None:
        """Record and write what this validated epoch improved, then the resumable `last`."""
        res = run.result
        meta = {"epoch": epoch, "arch": self.arch, "metrics": metrics}
        if improved:
            res.best, res.best_epoch, res.best_outputs = metrics, epoch, outputs
            if self.run_dir is not None:
                save_weights(run.model, self.run_dir / "best.safetensors", meta)
        if ema_improved:
            res.ema_best, res.ema_best_epoch = metrics, epoch
            if self.run_dir is not None:
                save_weights(run.ema.module, self.run_dir / "best_ema.safetensors", meta | {"ema_decay": self.ema_decay})
        self.save_last(run, epochs_done=epoch, step_in_epoch=0, partial=(0.0, 0.0))

    def save_last(self, run: RunState, epochs_done: int, step_in_epoch: int, partial: tuple[float, float]) -> None:
        """`last` weights and the full training state after `step_in_epoch` batches of epoch epochs_done + 1."""
        if self.run_dir is None:
            return
        meta = {"epoch": epochs_done, "step_in_epoch": step_in_epoch, "arch": self.arch}
        weights = {"last.safetensors": save_weights(run.model, self.run_dir / "last.safetensors", meta)}
        if run.ema is not None:
            weights["last_ema.safetensors"] = save_weights(run.ema.module, self.run_dir / "last_ema.safetensors",
                                                           meta | {"ema_decay": self.ema_decay})
        res = run.result
        best_logits = torch.from_numpy(res.best_outputs.logits) if res.best_outputs is not None else None
        save_state(self.run_dir, TrainingState(
            epochs_done=epochs_done, step_in_epoch=step_in_epoch, global_step=run.global_step,
            partial_loss=[float(partial[0]), float(partial[1])], optimizer=run.optimizer.state_dict(),
            scheduler=_plain(run.scheduler.state_dict()), scaler=run.scaler.state_dict(),
            stopper=run.stopper.state(), ema_stopper=run.ema_stopper.state(), history=res.history,
            best=res.best, best_epoch=res.best_epoch,
            best_loss=res.best_outputs.loss if res.best_outputs is not None else None, best_logits=best_logits,
            ema_best=res.ema_best, ema_best_epoch=res.ema_best_epoch, wandb_run=self.wandb_run, weights=weights))

    @staticmethod
    def restore(run: RunState, state: TrainingState) -> None:
        """Put a saved `last` back into a fresh run, exactly as it was when saved."""
        run.model.load_state_dict(state.model_state, strict=True)
        if run.ema is not None and state.ema_state is not None:
            run.ema.module.load_state_dict(state.ema_state, strict=True)
        run.optimizer.load_state_dict(state.optimizer)
        run.scheduler.load_state_dict(state.scheduler)
        if state.scaler:  # empty when saved without fp16 (a CPU, or bf16): a resumed fp16 run starts a fresh scale
            run.scaler.load_state_dict(state.scaler)
        run.stopper.load(state.stopper)
        if state.ema_stopper:
            run.ema_stopper.load(state.ema_stopper)
        run.global_step = state.global_step
        res = run.result
        res.history, res.best, res.best_epoch = list(state.history), dict(state.best), state.best_epoch
        res.ema_best, res.ema_best_epoch = dict(state.ema_best), state.ema_best_epoch
        if state.best_logits is not None:
            logits = state.best_logits.float()
            res.best_outputs = EpochOutputs(logits.numpy(), torch.softmax(logits, 1).numpy(), state.best_loss)
        # Last, so nothing above draws from the generators the interrupted run had reached.
        restore_rng(state.rng["tensors"], state.rng["plain"])
        log.info("resumed after epoch %d, batch %d (step %d)", state.epochs_done, state.step_in_epoch,
                 state.global_step)


def _plain(state: dict) -> dict:
    """A scheduler's state minus what JSON cannot hold (LambdaLR keeps None for plain functions)."""
    return {k: v for k, v in state.items() if isinstance(v, (int, float, str, bool, list, dict, type(None)))}
