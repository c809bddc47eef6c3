"""Throughput and model FLOPs utilisation, and the MoE layers' load statistics."""

from __future__ import annotations

import torch

from tessera.train.callbacks.base import Callback, StepRecord

__all__ = ["ThroughputCallback", "MoEStatsCallback"]


class ThroughputCallback(Callback):
    """tokens/s of the whole job, and MFU = achieved model FLOP/s / (ranks x peak FLOP/s of one GPU)."""

    priority = 10

    def __init__(self, flops_per_token: float, peak_flops_per_rank: float | None, world_size: int) -> None:
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops_per_rank * world_size if peak_flops_per_rank else None

    def on_step_end(self, record: StepRecord) -> None:
        tokens_per_s = record.step_tokens / max(record.step_time_s, 1e-9)
        record.metrics["tokens_per_s"] = tokens_per_s
        record.metrics["mfu"] = (tokens_per_s * self.flops_per_token / self.peak_flops
                                 if self.peak_flops else None)


class MoEStatsCallback(Callback):
    """Per step, over MoE layers: load imbalance (max/mean tokens per expert), router entropy, the
    unweighted load-balance loss, and the busiest expert's share of routed tokens. This rank's tokens."""

    priority = 20

    def on_step_end(self, record: StepRecord) -> None:
        stats = record.moe_stats
        if not stats:
            return
        # One stack and one host copy for all layers (the stats are detached device tensors).
        values = torch.stack([
            torch.stack([s.load_imbalance.float(), s.router_entropy.float(), s.load_balance_loss.float(),
                         (s.tokens_per_expert.max() / s.tokens_per_expert.sum().clamp_min(1)).float()])
            for s in stats
        ]).cpu()
        imbalance, entropy, lb_loss, top_share = values.T.tolist()
        record.metrics["moe_load_imbalance"] = sum(imbalance) / len(imbalance)
        record.metrics["moe_load_imbalance_max"] = max(imbalance)
        record.metrics["moe_router_entropy"] = sum(entropy) / len(entropy)
        record.metrics["moe_load_balance_loss"] = sum(lb_loss) / len(lb_loss)
        record.metrics["moe_top_expert_share"] = max(top_share)
