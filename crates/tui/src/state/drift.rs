//! The drift view's state: which checkpoint of a fine-tuning series (or which of the foundation/fine-tuned
//! pair) is shown, whether the series plays as an animation, the loss curve as chart points, and the selected
//! item's trajectory across the steps (in projection coordinates, and as braille cells on the current raster).

use std::time::Duration;

use crate::data::{Data, Drift, SeriesData, SeriesKind};
use crate::plot::{self, PathCell, Raster};

/// Time between two steps of the animation.
pub const FRAME: Duration = Duration::from_millis(400);

pub struct DriftView {
    series: Option<SeriesData>,
    on: bool,
    /// Index in the series' steps of the step shown.
    at: usize,
    playing: bool,
    /// Bounds of every step's projection together: the frame the scatter keeps while scrubbing.
    frame: Option<[f32; 4]>,
    /// The loss log as chart points (step, loss), and the range of the loss axis.
    losses: Vec<(f64, f64)>,
    loss_range: [f64; 2],
    /// The item the trajectory is of, and its position at each step (NaN where a step has no projection).
    followed: Option<u32>,
    trajectory: Vec<(f32, f32)>,
    /// The trajectory as braille cells on the current raster.
    path: Vec<PathCell>,
}

impl DriftView {
    /// The drift view of the store's series (or pair); without one it cannot be opened.
    pub fn new(data: &Data) -> DriftView {
        let series = data.series.clone();
        let mut frame: Option<[f32; 4]> = None;
        for st in series.iter().flat_map(|s| &s.steps) {
            let Some(sp) = data.spaces.get(st.space).filter(|sp| sp.projection.is_some()) else { continue };
            let b = sp.bounds;
            frame = Some(match frame {
                None => b,
                Some(f) => [f[0].min(b[0]), f[1].min(b[1]), f[2].max(b[2]), f[3].max(b[3])],
            });
        }
        let losses: Vec<(f64, f64)> = series
            .iter()
            .flat_map(|s| &s.losses)
            .filter(|l| l.loss.is_finite())
            .map(|l| (l.step as f64, l.loss))
            .collect();
        let lo = losses.iter().map(|l| l.1).fold(f64::INFINITY, f64::min);
        let hi = losses.iter().map(|l| l.1).fold(f64::NEG_INFINITY, f64::max);
        let loss_range = if losses.is_empty() { [0.0, 1.0] } else { [lo.min(0.0), hi.max(lo + 1e-9)] };
        DriftView {
            series,
            on: false,
            at: 0,
            playing: false,
            frame,
            losses,
            loss_range,
            followed: None,
            trajectory: Vec::new(),
            path: Vec::new(),
        }
    }

    /// Whether the store has a series (or pair) to show.
    pub fn available(&self) -> bool {
        self.series.is_some()
    }

    pub fn is_on(&self) -> bool {
        self.on
    }

    pub fn is_playing(&self) -> bool {
        self.playing
    }

    pub fn series(&self) -> Option<&SeriesData> {
        self.series.as_ref()
    }

    pub fn kind(&self) -> SeriesKind {
        self.series.as_ref().map_or(SeriesKind::Checkpoints, |s| s.kind)
    }

    /// Index of the step shown, and the number of steps.
    pub fn position(&self) -> (usize, usize) {
        (self.at, self.series.as_ref().map_or(0, |s| s.steps.len()))
    }

    /// The training step shown; none in a pair, whose two models are no steps of one run.
    pub fn step(&self) -> Option<u64> {
        let s = self.series.as_ref().filter(|s| s.kind == SeriesKind::Checkpoints)?;
        Some(s.steps.get(self.at)?.step)
    }

    /// The space (index in `Data::spaces`) of the step shown.
    pub fn space(&self) -> Option<usize> {
        Some(self.series.as_ref()?.steps.get(self.at)?.space)
    }

    /// The training loss at the step shown.
    pub fn loss(&self) -> Option<f64> {
        self.series.as_ref()?.loss_at(self.step()?)
    }

    /// How the step shown drifted: the name of the space before it and the drift columns from that one to
    /// this one; none on the first step. A checkpoint keeps its drift under its own space; the fine-tuned
    /// space of a pair has none of its own, its drift from the foundation is the dataset-level one.
    pub fn step_drift<'a>(&self, data: &'a Data) -> Option<(&'a str, &'a Drift)> {
        let s = self.series.as_ref()?;
        let previous = s.steps.get(self.at.checked_sub(1)?)?;
        let since = data.spaces.get(previous.space)?.name.as_str();
        let drift = match s.kind {
            SeriesKind::Checkpoints => &data.spaces.get(s.steps.get(self.at)?.space)?.drift,
            SeriesKind::Pair => &data.drift,
        };
        Some((since, drift))
    }

    pub fn frame(&self) -> Option<[f32; 4]> {
        self.frame
    }

    /// The loss log as (step, loss) points.
    pub fn losses(&self) -> &[(f64, f64)] {
        &self.losses
    }

    /// The loss axis: from zero (or the lowest loss, when negative) to the highest.
    pub fn loss_range(&self) -> [f64; 2] {
        self.loss_range
    }

    /// The step axis: from the first checkpoint (or loss) to the last.
    pub fn step_range(&self) -> [f64; 2] {
        let steps = self.series.iter().flat_map(|s| s.steps.iter().map(|st| st.step as f64));
        let all: Vec<f64> = steps.chain(self.losses.iter().map(|l| l.0)).collect();
        let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if all.is_empty() { [0.0, 1.0] } else { [lo, hi.max(lo + 1.0)] }
    }

    /// The current step as a vertical line across the loss chart.
    pub fn step_marker(&self) -> [(f64, f64); 2] {
        let x = self.step().unwrap_or(0) as f64;
        [(x, self.loss_range[0]), (x, self.loss_range[1])]
    }

    /// The followed item's positions, one per step.
    pub fn trajectory(&self) -> &[(f32, f32)] {
        &self.trajectory
    }

    /// The trajectory as braille cells on the current raster.
    pub fn path(&self) -> &[PathCell] {
        &self.path
    }

    /// Opens or closes the view; opening shows the step of the space shown when it is one, else the first.
    /// Closing stops the animation. Says whether the view is now on.
    pub fn toggle(&mut self, current_space: usize) -> bool {
        if self.on {
            self.on = false;
            self.playing = false;
        } else if let Some(s) = &self.series {
            self.on = true;
            self.at = s.steps.iter().position(|st| st.space == current_space).unwrap_or(0);
        }
        self.on
    }

    /// Moves `by` steps, clamped to the series, when the view is open; stops the animation. Says whether
    /// the step changed.
    pub fn scrub(&mut self, by: i64) -> bool {
        self.playing = false;
        self.on && self.go(self.at as i64 + by)
    }

    /// Starts or stops the animation; started on the last step, it begins again from the first. Says
    /// whether the step changed.
    pub fn toggle_play(&mut self) -> bool {
        if self.playing || !self.on {
            self.playing = false;
            return false;
        }
        let (at, n) = self.position();
        self.playing = n > 1;
        at + 1 >= n && self.go(0)
    }

    /// One tick of the animation: the next step while playing, stopping on the last. Says whether the
    /// step changed.
    pub fn frame_tick(&mut self) -> bool {
        if !self.playing || !self.on {
            return false;
        }
        let moved = self.go(self.at as i64 + 1);
        let (at, n) = self.position();
        if at + 1 >= n {
            self.playing = false;
        }
        moved
    }

    fn go(&mut self, to: i64) -> bool {
        let n = self.position().1 as i64;
        let to = to.clamp(0, (n - 1).max(0)) as usize;
        let moved = to != self.at;
        self.at = to;
        moved
    }

    /// Reads the positions of `selected` at every step (when it is another item than before).
    pub fn follow(&mut self, data: &Data, selected: Option<u32>) {
        if self.followed == selected && !self.trajectory.is_empty() {
            return;
        }
        self.followed = selected;
        self.trajectory.clear();
        let (Some(id), Some(series)) = (selected, &self.series) else { return };
        let i = id as usize;
        for st in &series.steps {
            let proj = data.spaces.get(st.space).and_then(|sp| sp.projection.as_ref());
            let at = proj.and_then(|(_, p)| Some((*p.get(2 * i)?, *p.get(2 * i + 1)?)));
            self.trajectory.push(at.unwrap_or((f32::NAN, f32::NAN)));
        }
    }

    /// Draws the trajectory into braille cells of `raster` (the scatter's current one); none when off.
    pub fn trace(&mut self, raster: Option<&Raster>) {
        self.path = match raster {
            Some(r) if self.on => plot::path(r, &self.trajectory),
            _ => Vec::new(),
        };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use torchlight_store::LossPoint;

    use super::DriftView;
    use crate::data::{Data, Drift, SeriesData, SeriesKind, SpaceData, Step};

    /// Three steps of two items; the middle step has no projection yet.
    fn data() -> Data {
        let space = |name: &str, proj: Option<Vec<f32>>, bounds| SpaceData {
            name: name.into(),
            projection: proj.map(|p| ("umap", Arc::new(p))),
            bounds,
            ..SpaceData::default()
        };
        Data {
            items: 2,
            spaces: vec![
                space("foundation", Some(vec![0.0, 0.0, 1.0, 1.0]), [0.0, 0.0, 1.0, 1.0]),
                space("step-10", None, [0.0, 0.0, 1.0, 1.0]),
                space("step-20", Some(vec![4.0, -2.0, 1.0, 1.0]), [1.0, -2.0, 4.0, 1.0]),
            ],
            series: Some(SeriesData {
                kind: SeriesKind::Checkpoints,
                steps: (0..3).map(|s| Step { space: s, step: 10 * s as u64 }).collect(),
                losses: vec![LossPoint { step: 5, loss: 2.0 }, LossPoint { step: 15, loss: 1.0 }],
            }),
            ..Data::default()
        }
    }

    #[test]
    fn scrubbing_is_clamped_to_the_series() {
        let mut d = DriftView::new(&data());
        assert!(!d.scrub(1), "closed, nothing moves");
        assert!(d.toggle(2), "opens on the step of the space shown");
        assert_eq!(d.position(), (2, 3));
        assert!(!d.scrub(1));
        assert!(d.scrub(-5));
        assert_eq!((d.position().0, d.space(), d.step()), (0, Some(0), Some(0)));
        assert_eq!(d.loss(), None, "nothing logged before step 5");
        d.scrub(1);
        assert_eq!(d.loss(), Some(2.0), "the last loss logged at or before step 10");
        assert_eq!(d.frame(), Some([0.0, -2.0, 4.0, 1.0]), "every step's bounds together, skipping the unprojected");
    }

    #[test]
    fn play_stops_on_the_last_step() {
        let mut d = DriftView::new(&data());
        d.toggle_play();
        assert!(!d.is_playing(), "only an open view plays");
        d.toggle(0);
        assert!(!d.toggle_play(), "starting on the first step stays on it");
        assert!(d.frame_tick() && d.frame_tick());
        assert!(!d.is_playing());
        assert!(!d.frame_tick());
        assert_eq!(d.position().0, 2);
        assert!(d.toggle_play(), "from the last step it starts over");
        assert_eq!(d.position().0, 0);
        d.toggle(0);
        assert!(!d.is_playing(), "closing stops it");
    }

    #[test]
    fn the_trajectory_has_a_point_per_step_and_a_gap_where_one_is_missing() {
        let data = data();
        let mut d = DriftView::new(&data);
        d.follow(&data, Some(0));
        let t = d.trajectory();
        assert_eq!(t.len(), 3);
        assert_eq!((t[0], t[2]), ((0.0, 0.0), (4.0, -2.0)));
        assert!(t[1].0.is_nan());
        d.follow(&data, Some(1));
        assert_eq!(d.trajectory()[2], (1.0, 1.0));
        d.follow(&data, None);
        assert!(d.trajectory().is_empty());
        assert_eq!(d.step_marker()[0].0, 0.0);
        assert_eq!(d.losses(), [(5.0, 2.0), (15.0, 1.0)]);
    }

    #[test]
    fn a_pair_has_no_steps_or_loss_and_its_second_step_drifted_as_the_dataset() {
        let mut data = data();
        let steps = vec![Step { space: 0, step: 0 }, Step { space: 2, step: 0 }];
        data.series = Some(SeriesData { kind: SeriesKind::Pair, steps, losses: Vec::new() });
        data.drift = Drift { movement: Some(vec![3.0, 4.0]), ..Drift::default() };
        let mut d = DriftView::new(&data);
        d.toggle(0);
        assert_eq!((d.position(), d.step(), d.loss()), ((0, 2), None, None));
        assert!(d.step_drift(&data).is_none(), "nothing before the first step");
        d.scrub(1);
        let (since, drift) = d.step_drift(&data).unwrap();
        assert_eq!((since, drift.of(1)[1]), ("foundation", Some(4.0)));
    }

    #[test]
    fn a_checkpoint_drifted_as_its_own_space_says() {
        let mut data = data();
        data.spaces[2].drift = Drift { movement: Some(vec![1.0, 2.0]), ..Drift::default() };
        data.drift = Drift { movement: Some(vec![9.0, 9.0]), ..Drift::default() };
        let mut d = DriftView::new(&data);
        d.toggle(2);
        let (since, drift) = d.step_drift(&data).unwrap();
        assert_eq!((since, drift.of(0)[1]), ("step-10", Some(1.0)));
    }
}
