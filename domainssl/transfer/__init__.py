"""domainssl.transfer: encoder export/load (safetensors + card) and few-label transfer
(pretraining runs live in domainssl.train).

Names are re-exported lazily so that `import domainssl` does not import torch.

    enc = load_encoder("ENCODER_DIR")                    # eval mode, enc.card
    x = prepare_input(enc, image)                        # (C, *S) data units -> (in_chans, *input_size)
    labeled = load_labeled("labels.csv")                 # CSV path,label[,split] or folder per class
    rows, meta = compare_encoders("ENCODER_DIR", labeled.with_split(), shots=[1, 5, 10], seeds=5)
"""

from .._lazy import lazy_getattr

_EXPORTS = {
    "read_card": "card",
    "write_card": "card",
    "resolve_channels": "card",
    "CardError": "card",
    "CardMismatchError": "card",
    "make_card": "encoder_io",
    "export_encoder": "encoder_io",
    "load_encoder": "encoder_io",
    "WeightsMismatchError": "encoder_io",
    "load_labeled": "labeled",
    "from_arrays": "labeled",
    "LabeledSet": "labeled",
    "prepare_input": "preprocess",
    "load_shared_set": "labeled_sets",
    "run_fewshot": "fewshot",
    "Candidate": "fewshot",
    "compare_encoders": "evaluate",
    "linear_probe": "probes",
    "knn_predict": "probes",
    "finetune_predict": "finetune",
    "format_table": "report",
    "write_results": "report",
    "plot_results": "report",
    "export_run": "export_run",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
