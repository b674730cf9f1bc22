"""The dataset builder's pure core: request, targets, splits, leakage cuts, files, manifest.

No HTTP, database or bus here: ``services`` orchestrates a build around these pieces.
"""

from feature_service.datasets.leakage import (
    LeakageGuard,
    Split,
    check_no_leakage,
    embargo_for,
    timestamps_us,
    validate_registry_for_leakage,
)
from feature_service.datasets.manifest import (
    build_manifest,
    manifest_hash,
    read_manifest,
    verify_manifest,
    write_manifest,
)
from feature_service.datasets.output import (
    SplitWriter,
    content_hash,
    read_split,
    split_path,
    write_split,
)
from feature_service.datasets.request import (
    DatasetBuildRequest,
    Period,
    RandomSplitConfig,
    TargetConfig,
    WalkForwardConfig,
    validate_request,
    walk_forward_windows,
    with_concrete_version,
)
from feature_service.datasets.splits import (
    Fold,
    Splits,
    random_split,
    time_based_split,
    walk_forward_counts,
    walk_forward_folds,
    walk_forward_warnings,
)
from feature_service.datasets.targets import TARGET, TARGET_RETURN, add_targets, iter_targets

__all__ = [
    "TARGET",
    "TARGET_RETURN",
    "DatasetBuildRequest",
    "Fold",
    "LeakageGuard",
    "Period",
    "RandomSplitConfig",
    "Split",
    "SplitWriter",
    "Splits",
    "TargetConfig",
    "WalkForwardConfig",
    "add_targets",
    "build_manifest",
    "check_no_leakage",
    "content_hash",
    "embargo_for",
    "iter_targets",
    "manifest_hash",
    "random_split",
    "read_manifest",
    "read_split",
    "split_path",
    "time_based_split",
    "timestamps_us",
    "validate_registry_for_leakage",
    "validate_request",
    "verify_manifest",
    "walk_forward_counts",
    "walk_forward_folds",
    "walk_forward_warnings",
    "walk_forward_windows",
    "with_concrete_version",
    "write_manifest",
    "write_split",
]
