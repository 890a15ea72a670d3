"""The training side of wispy's compression: block-based structured pruning (RTMobile's BSP)
with ADMM and masked fine-tuning, pictures of the pruned matrices, and the accuracy sweep."""
from wispy.compress.admm import ADMM, admm_prune, admm_train, finetune_masked, magnitude_prune
from wispy.compress.block_sparse import (BlockSpec, apply_masks, attach_masks, block_sparse_mask, block_structure,
                           compression_report, load_pruned, mask_gradients, masks_from_weights,
                           project_block_sparse, prunable_matrices, prune_block_sparse, rates_for_target,
                           save_pruned)

__all__ = [
    "ADMM", "BlockSpec", "admm_prune", "admm_train", "apply_masks", "attach_masks", "block_sparse_mask",
    "block_structure", "compression_report", "finetune_masked", "load_pruned", "magnitude_prune",
    "mask_gradients", "masks_from_weights", "project_block_sparse", "prunable_matrices", "prune_block_sparse",
    "rates_for_target", "save_pruned",
]

# int8 quantization of Conv1d/Linear (post-training, QAT) and int8 Winograd with Range-Scaled
# Quantization (wispy.compress.quant, calibrate, rsq); the wispy:: ops are wispy.dialects.quant's.
from wispy.compress.quant import (QuantConv1d, QuantLinear, freeze, load_quantized, prepare,  # noqa: E402
                                  quant_layers, quant_summary, save_quantized, with_winograd)
from wispy.compress.calibrate import calibrate, quantize  # noqa: E402

__all__ += ["QuantConv1d", "QuantLinear", "calibrate", "freeze", "load_quantized", "prepare", "quant_layers",
            "quant_summary", "quantize", "save_quantized", "with_winograd"]
from wispy.compress.winograd_choice import choose_winograd  # noqa: E402

__all__ += ["choose_winograd"]
