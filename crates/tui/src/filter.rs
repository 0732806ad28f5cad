//! How the shown list is ordered and narrowed down: the sort keys and the filters, as plain values.

use regex::Regex;
use torchlight_store::TagKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Outlier,
    /// The drift columns between the first and the last space (the dataset-level ones).
    DriftJaccard,
    DriftMovement,
    DriftRankChange,
    NnDistance,
    LabelQuality,
    Label,
    Pred,
    Id,
    Tag,
}

impl SortKey {
    /// The order `s` cycles through: the drift columns right after the outlier score, so "what did
    /// fine-tuning move most" is one key away and "least" one more.
    pub const ALL: [SortKey; 10] = [
        SortKey::Outlier,
        SortKey::DriftJaccard,
        SortKey::DriftMovement,
        SortKey::DriftRankChange,
        SortKey::NnDistance,
        SortKey::LabelQuality,
        SortKey::Label,
        SortKey::Pred,
        SortKey::Id,
        SortKey::Tag,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Outlier => "outlier score",
            SortKey::DriftJaccard => "drift jaccard",
            SortKey::DriftMovement => "drift movement",
            SortKey::DriftRankChange => "drift rank change",
            SortKey::NnDistance => "nn distance",
            SortKey::LabelQuality => "label quality",
            SortKey::Label => "label",
            SortKey::Pred => "predicted",
            SortKey::Id => "id",
            SortKey::Tag => "tag",
        }
    }

    /// Whether the sort starts descending: each drift key starts with what moved most (fewest shared
    /// neighbours, farthest moved, most fallen outlier rank).
    pub fn starts_descending(self) -> bool {
        self == SortKey::DriftMovement
    }

    pub fn is_drift(self) -> bool {
        matches!(self, SortKey::DriftJaccard | SortKey::DriftMovement | SortKey::DriftRankChange)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagFilter {
    Any,
    Untagged,
    Tagged,
    Kind(TagKind),
    Relabelled,
}

impl TagFilter {
    /// The next filter in the order `t` cycles through.
    pub fn next(self) -> TagFilter {
        match self {
            TagFilter::Any => TagFilter::Untagged,
            TagFilter::Untagged => TagFilter::Tagged,
            TagFilter::Tagged => TagFilter::Kind(TagKind::Ok),
            TagFilter::Kind(TagKind::Ok) => TagFilter::Kind(TagKind::Outlier),
            TagFilter::Kind(TagKind::Outlier) => TagFilter::Kind(TagKind::Mislabeled),
            TagFilter::Kind(TagKind::Mislabeled) => TagFilter::Kind(TagKind::Duplicate),
            TagFilter::Kind(TagKind::Duplicate) => TagFilter::Relabelled,
            TagFilter::Relabelled => TagFilter::Any,
        }
    }

    pub fn name(self) -> String {
        match self {
            TagFilter::Any => "any".into(),
            TagFilter::Untagged => "untagged".into(),
            TagFilter::Tagged => "tagged".into(),
            TagFilter::Kind(k) => k.as_str().into(),
            TagFilter::Relabelled => "relabelled".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagFilter {
    None,
    /// cleanlab's near duplicate (flag `D`).
    NearDuplicate,
    /// The article's absolute nearest-neighbour flag (flag `n`).
    NnFlag,
    LabelIssue,
    Outlier,
}

impl FlagFilter {
    /// The next filter in the order `f` cycles through.
    pub fn next(self) -> FlagFilter {
        match self {
            FlagFilter::None => FlagFilter::NearDuplicate,
            FlagFilter::NearDuplicate => FlagFilter::NnFlag,
            FlagFilter::NnFlag => FlagFilter::LabelIssue,
            FlagFilter::LabelIssue => FlagFilter::Outlier,
            FlagFilter::Outlier => FlagFilter::None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FlagFilter::None => "none",
            FlagFilter::NearDuplicate => "near-duplicate",
            FlagFilter::NnFlag => "nn-flag",
            FlagFilter::LabelIssue => "label-issue",
            FlagFilter::Outlier => "outlier (lowest 1%)",
        }
    }
}

/// 'More like this': an item's arroy neighbours in one space, nearest first.
#[derive(Debug, Clone)]
pub struct Like {
    pub id: u32,
    pub space: usize,
    pub found: Vec<(u32, f32)>,
}

#[derive(Debug, Clone)]
pub struct Filter {
    pub label: Option<u32>,
    pub pred: Option<u32>,
    pub tag: TagFilter,
    pub flag: FlagFilter,
    /// The regular expression as typed, and compiled.
    pub source: Option<(String, Regex)>,
    pub like: Option<Like>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter { label: None, pred: None, tag: TagFilter::Any, flag: FlagFilter::None, source: None, like: None }
    }
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.label.is_none()
            && self.pred.is_none()
            && self.tag == TagFilter::Any
            && self.flag == FlagFilter::None
            && self.source.is_none()
            && self.like.is_none()
    }
}
