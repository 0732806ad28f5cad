//! The scatter panels' state: zoom and pan, the braille rasters of the shown items, and on pixel terminals
//! the pictures of the same panels that the plot worker sends back. A raster is rebuilt only when what it
//! depends on changes; a picture counts only for the raster it was drawn from.

use std::collections::HashMap;
use std::sync::Arc;

use ratatui::layout::Rect;

use crate::data::Data;
use crate::layout;
use crate::plot::{self, PlotJob, PlotKey, Raster, ScatterView};
use crate::preview::{Picture, PictureError, Plotted, Plotter};
use crate::theme::Theme;

/// What a pixel scatter marks besides the points. The neighbours and the trail follow the selection and
/// the space, so a plot drawn for a selection in a raster stays right for them.
pub struct Marks<'a> {
    pub selected: Option<u32>,
    /// The selected item's neighbours (id, distance).
    pub neighbours: &'a [(u32, f32)],
    /// The selected item's positions across a series (empty outside the drift view).
    pub trail: &'a [(f32, f32)],
}

/// What the rasters depend on: space, shown set, plot size, zoom, pan and frame bits, side by side.
type RasterKey = (usize, u64, (u16, u16), [u32; 8], bool);

pub struct Scatter {
    view: ScatterView,
    rasters: Vec<Raster>,
    /// Bumped whenever the rasters are rebuilt: a pixel scatter of an older raster is not shown.
    generation: u64,
    key: Option<RasterKey>,
    /// Pixel scatters by space, on pixel terminals; the braille raster shows until one for the current
    /// raster arrives.
    plots: HashMap<usize, (PlotKey, Picture)>,
    /// None unless the terminal draws pixels.
    plotter: Option<Plotter>,
    last_plot: Vec<PlotKey>,
}

impl Scatter {
    pub fn new(plotter: Option<Plotter>) -> Scatter {
        Scatter {
            view: ScatterView::default(),
            rasters: Vec::new(),
            generation: 0,
            key: None,
            plots: HashMap::new(),
            plotter,
            last_plot: Vec::new(),
        }
    }

    pub fn view(&self) -> &ScatterView {
        &self.view
    }

    /// One raster per panel shown.
    pub fn rasters(&self) -> &[Raster] {
        &self.rasters
    }

    /// The pixel scatter to draw for a raster, if one drawn from this very raster has arrived.
    pub fn picture(&self, r: &Raster) -> Option<&Picture> {
        self.plots.get(&r.space).filter(|(k, _)| k.raster == self.generation).map(|(_, p)| p)
    }

    /// What the newest pixel scatter of a space was drawn for, current or not.
    pub fn plot_key(&self, space: usize) -> Option<PlotKey> {
        self.plots.get(&space).map(|(k, _)| *k)
    }

    pub fn toggle_side_by_side(&mut self) {
        self.view.side_by_side = !self.view.side_by_side;
    }

    pub fn set_side_by_side(&mut self, on: bool) {
        self.view.side_by_side = on;
    }

    /// Frames these bounds instead of each space's own (None: the space's own).
    pub fn set_frame(&mut self, frame: Option<[f32; 4]>) {
        self.view.frame = frame;
    }

    pub fn zoom_in(&mut self) {
        self.view.zoom = (self.view.zoom * 1.5).min(200.0);
    }

    pub fn zoom_out(&mut self) {
        self.view.zoom = (self.view.zoom / 1.5).max(1.0);
    }

    /// Pans by fractions of the panel's width and height.
    pub fn pan(&mut self, dx: f32, dy: f32) {
        let z = self.view.zoom;
        self.view.pan = (self.view.pan.0 + dx / z, self.view.pan.1 + dy / z);
    }

    /// Back to the whole projection (side by side stays as it is).
    pub fn reset(&mut self) {
        let ScatterView { side_by_side, frame, .. } = self.view;
        self.view = ScatterView { side_by_side, frame, ..ScatterView::default() };
    }

    /// Rebuilds the rasters for the scatter `panels` if the space, the shown set (`shown_generation`
    /// changes with it), the size, zoom or pan changed.
    pub fn rasterize(&mut self, data: &Data, space: usize, shown: &[u32], shown_generation: u64, panels: [Rect; 2]) {
        let panels: Vec<Rect> = panels.into_iter().filter(|r| r.width > 2 && r.height > 2).collect();
        let inner = panels.first().map_or((0, 0), |r| (r.width - 2, r.height - 2));
        let v = &self.view;
        let f = v.frame.unwrap_or([f32::NAN; 4]).map(f32::to_bits);
        let pz = [
            v.zoom.to_bits(),
            v.pan.0.to_bits(),
            v.pan.1.to_bits(),
            u32::from(v.frame.is_some()),
            f[0],
            f[1],
            f[2],
            f[3],
        ];
        let key = (space, shown_generation, inner, pz, v.side_by_side);
        if self.key == Some(key) {
            return;
        }
        self.key = Some(key);
        self.generation += 1;
        let spaces: Vec<usize> = if v.side_by_side { (0..data.spaces.len().min(2)).collect() } else { vec![space] };
        self.rasters = spaces
            .into_iter()
            .zip(panels)
            .map(|(s, r)| {
                let plot = layout::plot_area(r);
                plot::rasterize(data, s, shown, &self.view, plot.width, plot.height)
            })
            .collect();
    }

    /// On pixel terminals, asks the plot worker for the panels of the current rasters and selection (once
    /// per change: the worker keeps only the newest request).
    pub fn request_plots(&mut self, data: &Data, space: usize, shown: &Arc<Vec<u32>>, marks: Marks, theme: Theme) {
        let Marks { selected, neighbours, trail } = marks;
        let Some(plotter) = &self.plotter else { return };
        let keys: Vec<PlotKey> =
            self.rasters.iter().map(|_| PlotKey { raster: self.generation, selection: selected }).collect();
        if keys == self.last_plot {
            return;
        }
        let (fw, fh) = plotter.font_size();
        let all = shown.len() == data.items as usize;
        let jobs = self
            .rasters
            .iter()
            .zip(&keys)
            .filter_map(|(r, &key)| {
                let (_, proj) = data.spaces.get(r.space)?.projection.as_ref()?;
                let current = r.space == space;
                Some(PlotJob {
                    space: r.space,
                    key,
                    cells: (r.w, r.h),
                    px: (u32::from(r.w) * u32::from(fw), u32::from(r.h) * u32::from(fh)),
                    window: r.window,
                    proj: proj.clone(),
                    label: data.label.clone(),
                    shown: (!all).then(|| shown.clone()),
                    outliers: r.outlier_ids.clone(),
                    selected: if current { selected } else { None },
                    neighbours: if current { neighbours.iter().map(|n| n.0).collect() } else { Vec::new() },
                    trail: if current { trail.to_vec() } else { Vec::new() },
                    theme,
                })
            })
            .collect();
        plotter.request(jobs);
        self.last_plot = keys;
    }

    /// Keeps a pixel scatter from the worker if it was drawn from the current raster: Ok(whether it was
    /// kept), or Err(why it could not be drawn), in which case the braille raster stays.
    pub fn plot_ready(&mut self, p: Plotted) -> Result<bool, PictureError> {
        if p.key.raster != self.generation {
            return Ok(false); // drawn for a raster that has since changed
        }
        let picture = p.picture?;
        self.plots.insert(p.space, (p.key, picture));
        Ok(true)
    }
}
