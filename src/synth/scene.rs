//! One pair's world: cameras, sun, terrain, street layout and objects, drawn from its seed.
//!
//! The layout follows how settlements are built, because that is what makes disparity maps
//! realistic: a rotated grid of streets with sidewalks; blocks that are either closed
//! perimeter blocks of varied heights (urban), parcels with detached houses, gardens, walls
//! and trees (peri-urban), parks, car parks, fields or paved squares with a tower. Buildings
//! are unions of rectangular wings (rectangles, L, U, T and courtyard shapes), each with a
//! flat, gable, hip or shed roof; flat roofs get parapets and superstructures, pitched roofs
//! chimneys. Terrain is gentle value noise plus a slope, shifted so that it never goes below
//! z = 0, which is what `--min-disparity` refers to.

use super::config::{Span, Style, SynthConfig};
use super::geometry::{Block, Cap, Rect, Roof, Tree};
use super::noise::Noise;
use super::rng::Rng;
use serde::Serialize;

/// The two views: nadir pinhole cameras across the rows (x), orthographic along the columns
/// (y), at the same height, their centres `base_m` apart along X. Row `y` of both images is
/// ground row `Y = (y − cy) · gsd`, so the pair is exactly epipolar.
#[derive(Debug, Clone, Serialize)]
pub struct Camera {
    /// Focal length (px).
    pub focal_px: f64,
    /// Height of both centres above z = 0 (m).
    pub flying_height_m: f64,
    /// Distance between the centres (m).
    pub base_m: f64,
    /// Ground sampling distance at z = 0 (m/px), also the row spacing.
    pub gsd_m: f64,
    /// X of the centres (m): left, right.
    pub centre_x_m: [f64; 2],
    /// Tangent of the look angle of column `cx` in each view.
    pub look_tan_centre: [f64; 2],
    /// Column of the image centre ((width − 1) / 2).
    pub cx_px: f64,
    /// Row of the image centre ((height − 1) / 2).
    pub cy_px: f64,
    /// `s` in `d = f·B / (H − z) − s`.
    pub shift_px: f64,
}

/// The index of a view.
pub const LEFT: usize = 0;
/// The index of a view.
pub const RIGHT: usize = 1;

impl Camera {
    /// Tangent of the look angle of column `x` (continuous, pixel centres at integers).
    #[inline]
    pub fn look_tan(&self, view: usize, x_px: f64) -> f64 {
        self.look_tan_centre[view] + (x_px - self.cx_px) / self.focal_px
    }

    /// Column of a look tangent.
    #[inline]
    pub fn column(&self, view: usize, look_tan: f64) -> f64 {
        self.cx_px + (look_tan - self.look_tan_centre[view]) * self.focal_px
    }

    /// Disparity of every point at height `z_m`: `f·B / (H − z) − s`.
    #[inline]
    pub fn disparity(&self, z_m: f64) -> f64 {
        self.focal_px * self.base_m / (self.flying_height_m - z_m) - self.shift_px
    }

    /// Ground Y of a row (continuous).
    #[inline]
    pub fn row_y(&self, y_px: f64) -> f64 {
        (y_px - self.cy_px) * self.gsd_m
    }
}

/// Direction of the sun.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sun {
    /// Horizontal unit vector pointing towards the sun (X, Y).
    pub towards: (f64, f64),
    /// Tangent of the elevation.
    pub tan_elevation: f64,
    /// Unit vector towards the sun (X, Y, Z).
    pub direction: [f64; 3],
    /// Irradiance of the sky relative to the sun's on a horizontal surface.
    pub sky: f64,
}

/// Gentle relief: value noise plus a plane, never below 0 inside the scene.
#[derive(Debug, Clone, Serialize)]
pub struct Terrain {
    /// Noise amplitude (m): the noise part spans [0, 2·amp].
    pub amplitude_m: f64,
    /// Feature size of the relief (m).
    pub scale_m: f64,
    /// Slope along X (m/m).
    pub slope_x: f64,
    /// Slope along Y (m/m).
    pub slope_y: f64,
    /// Constant that keeps the plane positive over the scene (m).
    pub offset_m: f64,
    /// Upper bound of the terrain over the scene (m).
    pub max_m: f64,
}

impl Sun {
    /// The sun with its azimuth turned by the small angle whose tangent is `turn_tan`,
    /// its elevation raised by the small angle whose tangent is `raise_tan`, and `sky`.
    fn moved(&self, turn_tan: f64, raise_tan: f64, sky: f64) -> Sun {
        let towards = rotate(self.towards.0, self.towards.1, turn_tan);
        // tan(e + δ) = (tan e + tan δ) / (1 − tan e · tan δ)
        let tan_elevation = ((self.tan_elevation + raise_tan) / (1.0 - self.tan_elevation * raise_tan)).clamp(0.3, 4.0);
        let n = (1.0 + tan_elevation * tan_elevation).sqrt();
        Sun { towards, tan_elevation, direction: [towards.0 / n, towards.1 / n, tan_elevation / n], sky }
    }
}

/// Views taken at different times (`--time-gap`): each view has its own sun, and its own
/// exposure and white balance, applied to the radiance per [`Tint`](super::appearance::Tint).
#[derive(Debug, Clone, Serialize)]
pub struct Illumination {
    /// The sun at the instant of the view.
    pub sun: Sun,
    /// Radiance multiplier per tint (neutral, green, warm): exposure × white balance.
    pub tint_gain: [f32; 3],
}

impl Terrain {
    /// Height at (x, y).
    #[inline]
    pub fn height(&self, noise: &Noise, x: f64, y: f64) -> f64 {
        let n = noise.fbm(x + 1234.5, y - 987.25, self.scale_m, 3) as f64;
        self.amplitude_m * (1.0 + n) + self.slope_x * x + self.slope_y * y + self.offset_m
    }
}

/// Land cover of the ground (not under an object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cover {
    /// Lawn, meadow.
    Grass,
    /// Bare soil with furrows (fields).
    Field,
    /// Gravel.
    Gravel,
    /// Paving slabs (squares, yards).
    Paved,
    /// Asphalt with parking stall lines.
    Parking,
}

/// What a block is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Use {
    /// Closed perimeter block of attached buildings around a yard.
    Perimeter,
    /// Free-standing buildings of various shapes.
    Free,
    /// Detached houses on parcels.
    Houses,
    /// Park with trees.
    Park,
    /// Car park.
    Parking,
    /// Field.
    Field,
    /// Paved square with a tower.
    Square,
}

/// A street of the grid: a carriageway and two sidewalks.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Street {
    /// Position of the axis along the grid coordinate (m).
    pub pos_m: f64,
    /// Half-width of the carriageway (m).
    pub half_m: f64,
    /// Width of each sidewalk (m).
    pub walk_m: f64,
}

impl Street {
    fn outer(&self) -> f64 {
        self.half_m + self.walk_m
    }
}

/// A block between streets.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BlockInfo {
    /// Use.
    pub usage: Use,
    /// Ground cover of what is not built.
    pub cover: Cover,
    /// Base brightness of the cover.
    pub tone: f32,
    /// Seed of the block's textures.
    #[serde(skip)]
    pub seed: u64,
}

/// The street grid in city coordinates p = c·x + s·y, q = −s·x + c·y.
#[derive(Debug, Clone, Serialize)]
pub struct Layout {
    /// Cosine of the grid rotation.
    pub c: f64,
    /// Sine of the grid rotation.
    pub s: f64,
    /// Streets at fixed p (running along q), sorted.
    pub p_streets: Vec<Street>,
    /// Streets at fixed q (running along p), sorted.
    pub q_streets: Vec<Street>,
    /// Blocks, index `i * (q_streets.len() − 1) + j` between p-streets i, i+1 and q-streets j, j+1.
    pub blocks: Vec<BlockInfo>,
    /// Asphalt brightness.
    pub asphalt_tone: f32,
    /// Sidewalk brightness.
    pub walk_tone: f32,
}

/// Where a ground point lies in the street grid.
#[derive(Debug, Clone, Copy)]
pub enum Place {
    /// On a carriageway.
    Road {
        /// Distance from the street axis (m).
        across: f64,
        /// Coordinate along the street (m).
        along: f64,
        /// Half-width of the carriageway (m).
        half: f64,
        /// Inside an intersection.
        crossing: bool,
        /// Next to an intersection, where the crosswalk is.
        zebra: bool,
    },
    /// On a sidewalk.
    Walk {
        /// City coordinate p (m).
        u: f64,
        /// City coordinate q (m).
        v: f64,
    },
    /// Inside a block.
    Block {
        /// Index into [`Layout::blocks`].
        index: usize,
        /// City coordinate p (m).
        u: f64,
        /// City coordinate q (m).
        v: f64,
    },
}

impl Layout {
    /// City coordinates of a world point.
    #[inline]
    pub fn city(&self, x: f64, y: f64) -> (f64, f64) {
        (self.c * x + self.s * y, -self.s * x + self.c * y)
    }

    /// World coordinates of a city point.
    pub fn world(&self, p: f64, q: f64) -> (f64, f64) {
        (self.c * p - self.s * q, self.s * p + self.c * q)
    }

    /// Index of the street interval containing `v` and the street nearest to it.
    fn nearest(streets: &[Street], v: f64) -> (usize, usize) {
        let i = streets.partition_point(|s| s.pos_m <= v); // first street after v
        let below = i.saturating_sub(1);
        let near = if i < streets.len() && (streets[i].pos_m - v < v - streets[below].pos_m) { i } else { below };
        (below.min(streets.len().saturating_sub(2)), near)
    }

    /// Classifies a ground point.
    pub fn place(&self, x: f64, y: f64) -> Place {
        let (p, q) = self.city(x, y);
        let (bp, np) = Self::nearest(&self.p_streets, p);
        let (bq, nq) = Self::nearest(&self.q_streets, q);
        let (sp, sq) = (self.p_streets[np], self.q_streets[nq]);
        let (dp, dq) = (p - sp.pos_m, q - sq.pos_m);
        let on_p = dp.abs() <= sp.half_m;
        let on_q = dq.abs() <= sq.half_m;
        if on_p || on_q {
            let crossing = on_p && on_q;
            return if on_p {
                let zebra = !crossing && dq.abs() > sq.outer() && dq.abs() < sq.outer() + 3.5;
                Place::Road { across: dp, along: q, half: sp.half_m, crossing, zebra }
            } else {
                let zebra = dp.abs() > sp.outer() && dp.abs() < sp.outer() + 3.5;
                Place::Road { across: dq, along: p, half: sq.half_m, crossing, zebra }
            };
        }
        if dp.abs() <= sp.outer() || dq.abs() <= sq.outer() {
            return Place::Walk { u: p, v: q };
        }
        Place::Block { index: bp * (self.q_streets.len() - 1) + bq, u: p, v: q }
    }
}

/// The look of a facade.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Facade {
    /// Wall brightness.
    pub tone: f32,
    /// Storey height (m).
    pub storey_m: f32,
    /// Window bay width (m).
    pub bay_m: f32,
    /// Window width (m).
    pub window_w_m: f32,
    /// Window height (m).
    pub window_h_m: f32,
    /// Glass brightness.
    pub glass: f32,
}

/// Roof coverings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoofSurface {
    /// Clay or concrete tiles in rows.
    Tiles,
    /// Standing-seam metal.
    Metal,
    /// Bitumen or PVC membrane: almost no texture.
    Membrane,
    /// Gravel ballast.
    Gravel,
    /// Planted roof.
    Green,
}

/// What an object is, for its appearance.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A building wing.
    Wing {
        /// Roof covering.
        roof: RoofSurface,
        /// Roof brightness.
        roof_tone: f32,
        /// Facade look.
        facade: Facade,
    },
    /// A roof superstructure or chimney.
    Fixture {
        /// Brightness.
        tone: f32,
    },
    /// A car.
    Car {
        /// Paint brightness.
        tone: f32,
    },
    /// A garden wall or hedge.
    Wall {
        /// Brightness.
        tone: f32,
        /// A hedge (foliage) rather than masonry.
        hedge: bool,
    },
    /// A tree.
    Tree {
        /// Foliage brightness.
        tone: f32,
    },
}

/// The geometry of an object.
#[derive(Debug, Clone)]
pub enum Shape {
    /// A prism with a roof.
    Block(Block),
    /// A tree crown.
    Tree(Tree),
}

/// A scene object.
#[derive(Debug, Clone)]
pub struct Object {
    /// Geometry.
    pub shape: Shape,
    /// Appearance.
    pub kind: Kind,
    /// Seed of its textures.
    pub seed: u64,
}

impl Object {
    /// Bounding box (x0, x1, y0, y1).
    pub fn bbox(&self) -> (f64, f64, f64, f64) {
        match &self.shape {
            Shape::Block(b) => b.rect.bbox(),
            Shape::Tree(t) => (t.x - t.radius_m, t.x + t.radius_m, t.y - t.radius_m, t.y + t.radius_m),
        }
    }

    /// Highest point (m).
    pub fn top_m(&self) -> f64 {
        match &self.shape {
            Shape::Block(b) => b.ridge_m.max(b.eave_m + b.parapet_m),
            Shape::Tree(t) => t.caps.iter().map(|c| c.top_m).fold(0.0, f64::max) + t.bump_m,
        }
    }
}

/// Per-view camera model (applied after rendering).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Radiometry {
    /// Gain applied to the radiance.
    pub gain: f64,
    /// Offset added after the gain (fraction of full scale).
    pub offset: f64,
    /// Exponent of the tone curve: output = (gain·L + offset)^gamma.
    pub gamma: f64,
    /// Gaussian blur σ (px).
    pub blur_px: f64,
    /// Noise σ at mid-grey, 8-bit grey levels.
    pub noise_dn: f64,
    /// Vignetting: relative darkening at the image corners.
    pub vignetting: f64,
}

/// Counts of what was placed, for scene.json.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Buildings (a building may have several wings).
    pub buildings: usize,
    /// Building wings.
    pub wings: usize,
    /// Roof superstructures and chimneys.
    pub fixtures: usize,
    /// Trees.
    pub trees: usize,
    /// Cars.
    pub cars: usize,
    /// Walls and hedges.
    pub walls: usize,
}

/// A user texture assigned to a material of this scene.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TextureUse {
    /// Index into the texture sources (`--texture` files, then `--texture-dir` files).
    pub texture: usize,
    /// Size of a texel on the ground (m).
    pub texel_m: f64,
    /// Contrast applied around the texture mean.
    pub contrast: f32,
    /// Texel at ground (0, 0): where the crop starts.
    pub origin_px: (f64, f64),
    /// Rotation of the crop, in quarter turns.
    pub quarter_turns: u8,
}

/// User textures, by the material they replace.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TextureUses {
    /// Grass.
    pub grass: Option<TextureUse>,
    /// Fields.
    pub field: Option<TextureUse>,
    /// Paving.
    pub paved: Option<TextureUse>,
    /// Flat roofs.
    pub flat_roof: Option<TextureUse>,
    /// Tree crowns.
    pub foliage: Option<TextureUse>,
}

/// One pair's world.
pub struct Scene {
    /// Seed of the pair.
    pub seed: u64,
    /// Settlement style drawn for this pair.
    pub style: Style,
    /// Cameras.
    pub camera: Camera,
    /// The pair's sun, before `--time-gap` moves it per view (sizes the DSM grid, which must
    /// not depend on the time gap).
    pub sun: Sun,
    /// Sun, exposure and white balance of the left and right views.
    pub light: [Illumination; 2],
    /// Relief.
    pub terrain: Terrain,
    /// Streets and blocks.
    pub layout: Layout,
    /// Objects (DSM ids are index + 1; 0 is the ground).
    pub objects: Vec<Object>,
    /// What was placed.
    pub counts: Counts,
    /// Noise table shared by every texture and the relief.
    pub noise: Noise,
    /// Camera models of the left and right views.
    pub radiometry: [Radiometry; 2],
    /// User textures in use.
    pub textures: TextureUses,
    /// Ground extent that must be modelled (x0, x1, y0, y1).
    pub extent: (f64, f64, f64, f64),
}

fn draw(rng: &mut Rng, span: Span) -> f64 {
    if span.lo == span.hi { span.lo } else { rng.range(span.lo, span.hi) }
}

/// Rotates unit vector (c, s) by the small angle whose tangent is `t`.
fn rotate(c: f64, s: f64, t: f64) -> (f64, f64) {
    let n = (1.0 + t * t).sqrt();
    let (cr, sr) = (1.0 / n, t / n);
    (c * cr - s * sr, s * cr + c * sr)
}

/// Car parks: stall width, row depth, margin to the block edge (m); rows come in pairs
/// separated by a 6 m aisle.
pub const PARKING_STALL_M: f64 = 2.5;
/// See [`PARKING_STALL_M`].
pub const PARKING_ROW_M: f64 = 5.0;
/// See [`PARKING_STALL_M`].
pub const PARKING_MARGIN_M: f64 = 1.5;

/// Distance from the start of stall row `row` to the next one (m).
pub fn parking_row_step(row: usize) -> f64 {
    if row.is_multiple_of(2) { PARKING_ROW_M } else { PARKING_ROW_M + 6.0 }
}

/// The highest any object may be, for sizing the modelled extent before objects exist (m).
const MAX_OBJECT_M: f64 = 90.0;

impl Scene {
    /// Draws the world of pair `seed` under `config`; `texture_sizes` are the (width, height)
    /// of the user's texture sources.
    pub fn generate(config: &SynthConfig, seed: u64, texture_sizes: &[(usize, usize)]) -> Scene {
        let root = Rng::new(seed);
        let mut rng = root.fork("camera");
        let (w, h) = (config.width_px as f64, config.height_px as f64);
        let gsd = draw(&mut rng, config.gsd_m);
        let bh = draw(&mut rng, config.base_to_height);
        let look = draw(&mut rng, config.look_tan);
        let f = config.focal_px;
        let height = f * gsd;
        let base = bh * height;
        let look_l = look + bh / 2.0;
        let look_r = look - bh / 2.0 + config.min_disparity_px / f;
        let camera = Camera {
            focal_px: f,
            flying_height_m: height,
            base_m: base,
            gsd_m: gsd,
            centre_x_m: [-(look + bh / 2.0) * height, -(look + bh / 2.0) * height + base],
            look_tan_centre: [look_l, look_r],
            cx_px: (w - 1.0) / 2.0,
            cy_px: (h - 1.0) / 2.0,
            shift_px: f * (look_l - look_r),
        };

        let mut rng = root.fork("sun");
        let towards = rng.unit_vector();
        let tan_elevation = rng.range(0.55, 2.0); // 29° to 63°
        let n = (1.0 + tan_elevation * tan_elevation).sqrt();
        let sun = Sun {
            towards,
            tan_elevation,
            direction: [towards.0 / n, towards.1 / n, tan_elevation / n],
            sky: rng.range(0.18, 0.35),
        };
        let light = illumination(&sun, config.time_gap, &mut root.fork("time gap"));

        let mut rng = root.fork("style");
        let style = match config.style {
            Style::Mixed => {
                if rng.chance(0.5) {
                    Style::Urban
                } else {
                    Style::Periurban
                }
            }
            s => s,
        };

        // Conservative extent (largest heights) for the layout; the exact one comes later.
        let extent_for = |z_top: f64| -> (f64, f64, f64, f64) {
            let mut x0 = f64::INFINITY;
            let mut x1 = f64::NEG_INFINITY;
            for view in [LEFT, RIGHT] {
                for col in [-3.0, w + 2.0] {
                    let u = camera.look_tan(view, col);
                    for z in [0.0, z_top] {
                        let x = camera.centre_x_m[view] + u * (height - z);
                        x0 = x0.min(x);
                        x1 = x1.max(x);
                    }
                }
            }
            (x0, x1, camera.row_y(-3.0), camera.row_y(h + 2.0))
        };
        let mut rng = root.fork("terrain");
        let amplitude_m = rng.range(0.3, if style == Style::Urban { 2.5 } else { 5.0 });
        let slope = rng.range(0.0, 0.04);
        let dir = rng.unit_vector();
        let wide = extent_for(MAX_OBJECT_M + 20.0);
        let margin = 60.0; // shadows and objects straddling the border
        let reach_x = wide.0.abs().max(wide.1.abs()) + margin;
        let reach_y = wide.2.abs().max(wide.3.abs()) + margin;
        let (slope_x, slope_y) = (slope * dir.0, slope * dir.1);
        let offset_m = slope_x.abs() * reach_x + slope_y.abs() * reach_y;
        let terrain = Terrain {
            amplitude_m,
            scale_m: rng.range(80.0, 300.0),
            slope_x,
            slope_y,
            offset_m,
            max_m: 2.0 * amplitude_m + 2.0 * offset_m,
        };
        let noise = Noise::new(&mut root.fork("noise"));

        let region = (wide.0 - margin, wide.1 + margin, wide.2 - margin, wide.3 + margin);
        let mut builder = Builder {
            rng: root.fork("layout"),
            style,
            objects: Vec::new(),
            counts: Counts::default(),
            region,
            terrain: &terrain,
            noise: &noise,
        };
        let layout = builder.layout();
        builder.populate(&layout);
        let Builder { objects, counts, .. } = builder;

        let z_top = objects.iter().map(Object::top_m).fold(terrain.max_m, f64::max);
        let extent = extent_for(z_top + 0.5);

        let mut rng = root.fork("radiometry");
        let r = config.radiometric;
        let view_model = |rng: &mut Rng| Radiometry {
            gain: 1.0 + r * rng.range(-0.12, 0.12),
            offset: r * rng.range(-0.04, 0.04),
            gamma: 1.0 + r * rng.range(-0.12, 0.12),
            blur_px: (config.blur_px * (1.0 + r * rng.range(-0.25, 0.25))).max(0.0),
            noise_dn: config.noise_dn,
            vignetting: r * rng.range(0.0, 0.08),
        };
        let radiometry = [view_model(&mut rng), view_model(&mut rng)];

        let mut rng = root.fork("textures");
        let mut textures = TextureUses::default();
        if !texture_sizes.is_empty() {
            let pick = |rng: &mut Rng| {
                rng.chance(0.5).then(|| {
                    let texture = rng.below(texture_sizes.len());
                    let (tw, th) = texture_sizes[texture];
                    TextureUse {
                        texture,
                        // Texels about the size of a pixel: coarser would blur the material,
                        // much finer would alias.
                        texel_m: gsd * rng.range(0.7, 1.5),
                        contrast: rng.range(0.6, 1.0) as f32,
                        origin_px: (rng.range(0.0, tw as f64), rng.range(0.0, th as f64)),
                        quarter_turns: rng.below(4) as u8,
                    }
                })
            };
            textures.grass = pick(&mut rng);
            textures.field = pick(&mut rng);
            textures.paved = pick(&mut rng);
            textures.flat_roof = pick(&mut rng);
            textures.foliage = pick(&mut rng);
        }

        Scene { seed, style, camera, sun, light, terrain, layout, objects, counts, noise, radiometry, textures, extent }
    }
}

/// Largest change of the sun's azimuth between the views at `--time-gap 1`, as the tangent
/// of the angle (3°; small angles: tan δ ≈ δ).
pub const SUN_TURN_TAN: f64 = 0.052;
/// Largest change of the sun's elevation between the views at `--time-gap 1` (1.5°).
pub const SUN_RAISE_TAN: f64 = 0.026;

/// Each view's sun and camera exposure for a time gap of strength `gap` (0 = same instant):
/// between the views the sun turns by up to ±3°·gap in azimuth and ±1.5°·gap in elevation,
/// the sky share changes by up to ±0.04·gap, and exposure and the white balance of green and
/// warm materials each change by up to ±8 %·gap. Half of each change goes to each view.
fn illumination(sun: &Sun, gap: f64, rng: &mut Rng) -> [Illumination; 2] {
    let turn = gap * rng.range(-SUN_TURN_TAN, SUN_TURN_TAN);
    let raise = gap * rng.range(-SUN_RAISE_TAN, SUN_RAISE_TAN);
    let sky = gap * rng.range(-0.04, 0.04);
    let gains = [gap * rng.range(-0.15, 0.15), gap * rng.range(-0.1, 0.1), gap * rng.range(-0.1, 0.1)];
    [-0.5, 0.5].map(|half| {
        let exposure = 1.0 + half * gains[0];
        Illumination {
            sun: if gap == 0.0 { sun.clone() } else { sun.moved(half * turn, half * raise, (sun.sky + half * sky).clamp(0.1, 0.5)) },
            tint_gain: [exposure as f32, (exposure * (1.0 + half * gains[1])) as f32, (exposure * (1.0 + half * gains[2])) as f32],
        }
    })
}

/// Places streets and objects.
struct Builder<'a> {
    rng: Rng,
    style: Style,
    objects: Vec<Object>,
    counts: Counts,
    region: (f64, f64, f64, f64),
    terrain: &'a Terrain,
    noise: &'a Noise,
}

/// A rectangle in city coordinates.
#[derive(Debug, Clone, Copy)]
struct Area {
    p0: f64,
    p1: f64,
    q0: f64,
    q1: f64,
}

impl Area {
    fn width(&self) -> f64 {
        self.p1 - self.p0
    }
    fn depth(&self) -> f64 {
        self.q1 - self.q0
    }
    fn shrink(&self, m: f64) -> Area {
        Area { p0: self.p0 + m, p1: self.p1 - m, q0: self.q0 + m, q1: self.q1 - m }
    }
}

impl Builder<'_> {
    fn urban(&self) -> bool {
        self.style == Style::Urban
    }

    fn layout(&mut self) -> Layout {
        let rng = &mut self.rng;
        let (c, s) = if rng.chance(0.2) { (1.0, 0.0) } else { rng.unit_vector() };
        // Half-diagonal of the region, in any rotation.
        let (x0, x1, y0, y1) = self.region;
        let (rx, ry) = (x0.abs().max(x1.abs()), y0.abs().max(y1.abs()));
        let reach = (rx * rx + ry * ry).sqrt() + 40.0;
        let urban = self.style == Style::Urban;
        let streets = |rng: &mut Rng| {
            let mut v = -reach - rng.range(0.0, 60.0);
            let mut out = Vec::new();
            while v < reach + 200.0 {
                let major = rng.chance(0.25);
                let half_m = if major { rng.range(5.5, 9.0) } else { rng.range(2.8, 4.5) };
                let walk_m = if urban { rng.range(2.0, 4.5) } else { rng.range(0.0, 2.5) };
                out.push(Street { pos_m: v, half_m, walk_m });
                let block = if urban { rng.range(45.0, 110.0) } else { rng.range(55.0, 150.0) };
                v += block + half_m + walk_m;
            }
            out
        };
        let p_streets = streets(rng);
        let q_streets = streets(rng);
        let mut blocks = Vec::new();
        for _ in 0..p_streets.len() - 1 {
            for _ in 0..q_streets.len() - 1 {
                let uses: &[(Use, f64)] = if urban {
                    &[(Use::Perimeter, 5.0), (Use::Free, 3.0), (Use::Square, 0.8), (Use::Park, 0.8), (Use::Parking, 0.8)]
                } else {
                    &[(Use::Houses, 6.0), (Use::Free, 1.0), (Use::Park, 1.0), (Use::Parking, 0.6), (Use::Field, 1.2)]
                };
                let usage = uses[rng.weighted(&uses.iter().map(|u| u.1).collect::<Vec<_>>())].0;
                let cover = match usage {
                    Use::Perimeter => [Cover::Paved, Cover::Grass, Cover::Gravel][rng.below(3)],
                    Use::Free => [Cover::Paved, Cover::Grass, Cover::Parking][rng.below(3)],
                    Use::Houses | Use::Park => Cover::Grass,
                    Use::Parking => Cover::Parking,
                    Use::Field => [Cover::Field, Cover::Grass][rng.below(2)],
                    Use::Square => Cover::Paved,
                };
                let tone = match cover {
                    Cover::Grass => rng.range(0.2, 0.32),
                    Cover::Field => rng.range(0.25, 0.42),
                    Cover::Gravel => rng.range(0.35, 0.5),
                    Cover::Paved => rng.range(0.35, 0.55),
                    Cover::Parking => rng.range(0.13, 0.22),
                } as f32;
                blocks.push(BlockInfo { usage, cover, tone, seed: rng.next_u64() });
            }
        }
        Layout {
            c,
            s,
            p_streets,
            q_streets,
            blocks,
            asphalt_tone: rng.range(0.12, 0.22) as f32,
            walk_tone: rng.range(0.38, 0.55) as f32,
        }
    }

    /// True when a city-frame area (with margin) may be seen.
    fn visible(&self, layout: &Layout, a: &Area) -> bool {
        let (x0, x1, y0, y1) = self.region;
        let mut bx = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for (p, q) in [(a.p0, a.q0), (a.p0, a.q1), (a.p1, a.q0), (a.p1, a.q1)] {
            let (x, y) = layout.world(p, q);
            bx = (bx.0.min(x), bx.1.max(x), bx.2.min(y), bx.3.max(y));
        }
        bx.0 < x1 && bx.1 > x0 && bx.2 < y1 && bx.3 > y0
    }

    fn push(&mut self, shape: Shape, kind: Kind) {
        let seed = self.rng.next_u64();
        let obj = Object { shape, kind, seed };
        let (x0, x1, y0, y1) = obj.bbox();
        let r = self.region;
        if x0 < r.1 && x1 > r.0 && y0 < r.3 && y1 > r.2 {
            match kind {
                Kind::Wing { .. } => self.counts.wings += 1,
                Kind::Fixture { .. } => self.counts.fixtures += 1,
                Kind::Car { .. } => self.counts.cars += 1,
                Kind::Wall { .. } => self.counts.walls += 1,
                Kind::Tree { .. } => self.counts.trees += 1,
            }
            self.objects.push(obj);
        }
    }

    fn ground(&self, x: f64, y: f64) -> f64 {
        self.terrain.height(self.noise, x, y)
    }

    fn populate(&mut self, layout: &Layout) {
        let nq = layout.q_streets.len() - 1;
        for i in 0..layout.p_streets.len() - 1 {
            for j in 0..nq {
                let (a, b) = (layout.p_streets[i], layout.p_streets[i + 1]);
                let (cq, d) = (layout.q_streets[j], layout.q_streets[j + 1]);
                let area = Area {
                    p0: a.pos_m + a.outer(),
                    p1: b.pos_m - b.outer(),
                    q0: cq.pos_m + cq.outer(),
                    q1: d.pos_m - d.outer(),
                };
                if !self.visible(layout, &area) {
                    continue;
                }
                let info = layout.blocks[i * nq + j];
                match info.usage {
                    Use::Perimeter => self.perimeter_block(layout, area),
                    Use::Free => self.free_block(layout, area),
                    Use::Houses => self.houses_block(layout, area),
                    Use::Park => self.park(layout, area, 0.012),
                    Use::Field => self.park(layout, area, 0.0008),
                    Use::Parking => self.parking(layout, area),
                    Use::Square => self.square(layout, area),
                }
            }
        }
        self.street_furniture(layout);
    }

    fn facade(&mut self) -> Facade {
        let rng = &mut self.rng;
        let bay = rng.range(2.2, 4.0);
        Facade {
            tone: rng.range(0.3, 0.65) as f32,
            storey_m: rng.range(2.8, 3.4) as f32,
            bay_m: bay as f32,
            window_w_m: (bay * rng.range(0.35, 0.7)) as f32,
            window_h_m: rng.range(1.2, 1.8) as f32,
            glass: rng.range(0.05, 0.3) as f32,
        }
    }

    fn roof_choice(&mut self, flat_share: f64) -> (Roof, RoofSurface, f32) {
        let rng = &mut self.rng;
        if rng.chance(flat_share) {
            let surface = [RoofSurface::Membrane, RoofSurface::Gravel, RoofSurface::Membrane, RoofSurface::Green][rng.below(4)];
            let tone = match surface {
                RoofSurface::Membrane => rng.range(0.25, 0.75),
                RoofSurface::Gravel => rng.range(0.3, 0.5),
                _ => rng.range(0.15, 0.28),
            };
            (Roof::Flat, surface, tone as f32)
        } else {
            let roof = [Roof::Gable, Roof::Gable, Roof::Hip, Roof::Shed][rng.weighted(&[4.0, 1.0, 3.0, 0.6])];
            let surface = if rng.chance(0.8) { RoofSurface::Tiles } else { RoofSurface::Metal };
            (roof, surface, rng.range(0.15, 0.5) as f32)
        }
    }

    /// Adds a building made of `wings` (city-frame areas), rotated by `tilt` (tangent) about
    /// the first wing's centre.
    #[allow(clippy::too_many_arguments)]
    fn building(&mut self, layout: &Layout, wings: &[Area], storeys: f64, roof: Roof, surface: RoofSurface, roof_tone: f32, tilt: f64) {
        let facade = self.facade();
        let (pc, qc) = ((wings[0].p0 + wings[0].p1) / 2.0, (wings[0].q0 + wings[0].q1) / 2.0);
        let (cx, cy) = layout.world(pc, qc);
        let base = self.ground(cx, cy) - 0.3;
        let eave = base + 0.3 + storeys * facade.storey_m as f64;
        let (c, s) = rotate(layout.c, layout.s, tilt);
        let pitch = self.rng.range(0.45, 1.0);
        let parapet = if roof == Roof::Flat && self.rng.chance(0.7) { self.rng.range(0.3, 1.0) } else { 0.0 };
        let mut rects = Vec::new();
        let before = self.objects.len();
        for wing in wings {
            // Wing centre, rotated about the building centre.
            let (dp, dq) = ((wing.p0 + wing.p1) / 2.0 - pc, (wing.q0 + wing.q1) / 2.0 - qc);
            let (x, y) = (cx + c * dp - s * dq, cy + s * dp + c * dq);
            let rect = Rect { x, y, c, s, ha: wing.width() / 2.0, hb: wing.depth() / 2.0 };
            let rise = pitch * rect.ha.min(rect.hb);
            let ridge = if roof == Roof::Flat { eave } else { eave + rise };
            rects.push(rect);
            self.push(
                Shape::Block(Block { rect, base_m: base, eave_m: eave, ridge_m: ridge, roof, parapet_m: parapet }),
                Kind::Wing { roof: surface, roof_tone, facade },
            );
        }
        if self.objects.len() > before {
            self.counts.buildings += 1;
        }
        // Superstructures: boxes on flat roofs, chimneys on pitched ones.
        for rect in rects {
            let (n, fixture_top) = if roof == Roof::Flat {
                (self.rng.below(4), eave)
            } else {
                (self.rng.below(3), eave + pitch * rect.ha.min(rect.hb))
            };
            for _ in 0..n {
                let (ha, hb, h) = if roof == Roof::Flat {
                    let big = self.rng.chance(0.3);
                    let size = if big { self.rng.range(1.5, 3.0) } else { self.rng.range(0.4, 1.3) };
                    (size, size * self.rng.range(0.6, 1.6), if big { self.rng.range(2.0, 3.2) } else { self.rng.range(0.6, 1.8) })
                } else {
                    (0.35, 0.35, self.rng.range(0.5, 1.2))
                };
                let room_a = rect.ha - ha - 0.6;
                let room_b = rect.hb - hb - 0.6;
                if room_a <= 0.0 || room_b <= 0.0 {
                    continue;
                }
                let (a, b) = (self.rng.range(-room_a, room_a), self.rng.range(-room_b, room_b));
                let (x, y) = rect.world(a, b);
                let r = Rect { x, y, c: rect.c, s: rect.s, ha, hb };
                let top = if roof == Roof::Flat { fixture_top + h } else { fixture_top + h * 0.6 };
                let tone = self.rng.range(0.3, 0.75) as f32;
                self.push(
                    Shape::Block(Block { rect: r, base_m: base, eave_m: top, ridge_m: top, roof: Roof::Flat, parapet_m: 0.0 }),
                    Kind::Fixture { tone },
                );
            }
        }
    }

    /// Wings of a footprint filling `a`: rectangle, L, U, T or courtyard, by drawing.
    fn footprint(&mut self, a: Area, allow_courtyard: bool) -> Vec<Area> {
        let rng = &mut self.rng;
        let (w, d) = (a.width(), a.depth());
        let depth = rng.range(8.0, 14.0).min(w / 2.5).min(d / 2.5);
        let kinds = [1.0, 0.8, 0.4, 0.3, if allow_courtyard && w > 2.0 * depth + 6.0 && d > 2.0 * depth + 6.0 { 0.6 } else { 0.0 }];
        if depth < 5.0 || w < 12.0 || d < 12.0 {
            return vec![a];
        }
        match rng.weighted(&kinds) {
            0 => vec![a],
            1 => {
                // L: a full-width wing at q0 and a leg at p0 or p1.
                let leg_at_p0 = rng.chance(0.5);
                let leg = if leg_at_p0 { Area { p1: a.p0 + depth, q0: a.q0 + depth, ..a } } else { Area { p0: a.p1 - depth, q0: a.q0 + depth, ..a } };
                vec![Area { q1: a.q0 + depth, ..a }, leg]
            }
            2 => vec![
                Area { q1: a.q0 + depth, ..a },
                Area { p1: a.p0 + depth, q0: a.q0 + depth, ..a },
                Area { p0: a.p1 - depth, q0: a.q0 + depth, ..a },
            ],
            3 => {
                let mid = (a.p0 + a.p1) / 2.0;
                vec![Area { q1: a.q0 + depth, ..a }, Area { p0: mid - depth / 2.0, p1: mid + depth / 2.0, q0: a.q0 + depth, ..a }]
            }
            _ => vec![
                Area { q1: a.q0 + depth, ..a },
                Area { q0: a.q1 - depth, ..a },
                Area { p1: a.p0 + depth, q0: a.q0 + depth, q1: a.q1 - depth, ..a },
                Area { p0: a.p1 - depth, q0: a.q0 + depth, q1: a.q1 - depth, ..a },
            ],
        }
    }

    fn perimeter_block(&mut self, layout: &Layout, area: Area) {
        let a = area.shrink(self.rng.range(0.0, 1.5));
        let depth = self.rng.range(9.0, 15.0).min(a.width() / 3.0).min(a.depth() / 3.0);
        if depth < 6.0 {
            return self.free_block(layout, area);
        }
        let storeys = self.rng.range(3.0, 7.0).floor();
        // Four sides, each split into buildings of their own height and roof.
        let sides = [
            (Area { q1: a.q0 + depth, ..a }, true),
            (Area { q0: a.q1 - depth, ..a }, true),
            (Area { p1: a.p0 + depth, q0: a.q0 + depth, q1: a.q1 - depth, ..a }, false),
            (Area { p0: a.p1 - depth, q0: a.q0 + depth, q1: a.q1 - depth, ..a }, false),
        ];
        for (side, along_p) in sides {
            let len = if along_p { side.width() } else { side.depth() };
            let mut t = 0.0;
            while t < len - 0.5 {
                let mut seg = self.rng.range(12.0, 35.0);
                if len - (t + seg) < 8.0 {
                    seg = len - t;
                }
                let part = if along_p {
                    Area { p0: side.p0 + t, p1: side.p0 + t + seg, ..side }
                } else {
                    Area { q0: side.q0 + t, q1: side.q0 + t + seg, ..side }
                };
                let (roof, surface, tone) = self.roof_choice(0.6);
                let roof = if roof == Roof::Shed { Roof::Gable } else { roof };
                let st = (storeys + self.rng.range(-1.5, 2.5)).round().max(2.0);
                self.building(layout, &[part], st, roof, surface, tone, 0.0);
                t += seg;
            }
        }
        // The yard: trees, parked cars, sometimes a low annex.
        let yard = a.shrink(depth + 2.0);
        if yard.width() > 4.0 && yard.depth() > 4.0 {
            let n = (yard.width() * yard.depth() * self.rng.range(0.0, 0.006)) as usize + self.rng.below(3);
            for _ in 0..n {
                self.tree_in(layout, yard);
            }
            if yard.depth() > 8.0 {
                let cars = self.rng.below((yard.width() / 3.0) as usize + 1);
                let q = if self.rng.chance(0.5) { yard.q0 + 2.5 } else { yard.q1 - 2.5 };
                for _ in 0..cars {
                    let p = self.rng.range(yard.p0 + 1.5, (yard.p1 - 1.5).max(yard.p0 + 1.5));
                    self.car(layout, p, q, false);
                }
            }
            if self.rng.chance(0.3) && yard.width() > 12.0 && yard.depth() > 10.0 {
                let p = self.rng.range(yard.p0, yard.p1 - 8.0);
                let q = self.rng.range(yard.q0, yard.q1 - 6.0);
                let annex = Area { p0: p, p1: p + 8.0, q0: q, q1: q + 6.0 };
                let (roof, surface, tone) = self.roof_choice(0.7);
                self.building(layout, &[annex], 1.0, roof, surface, tone, 0.0);
            }
        }
    }

    fn free_block(&mut self, layout: &Layout, area: Area) {
        let a = area.shrink(self.rng.range(2.0, 6.0));
        if a.width() < 10.0 || a.depth() < 10.0 {
            return;
        }
        // Split into 1–4 lots along the longer side.
        let along_p = a.width() >= a.depth();
        let len = if along_p { a.width() } else { a.depth() };
        let lots = ((len / self.rng.range(25.0, 60.0)).round() as usize).clamp(1, 4);
        for k in 0..lots {
            let (t0, t1) = (len * k as f64 / lots as f64, len * (k + 1) as f64 / lots as f64);
            let lot = if along_p { Area { p0: a.p0 + t0, p1: a.p0 + t1, ..a } } else { Area { q0: a.q0 + t0, q1: a.q0 + t1, ..a } };
            let lot = lot.shrink(self.rng.range(2.0, 5.0));
            if lot.width() < 10.0 || lot.depth() < 10.0 {
                continue;
            }
            let wings = self.footprint(lot, true);
            let urban = self.urban();
            let storeys = if urban && self.rng.chance(0.12) { self.rng.range(9.0, 22.0) } else { self.rng.range(2.0, if urban { 7.0 } else { 4.0 }) }.floor();
            let (roof, surface, tone) = self.roof_choice(if urban { 0.75 } else { 0.5 });
            let tilt = if self.rng.chance(0.25) { self.rng.range(-0.3, 0.3) } else { 0.0 };
            self.building(layout, &wings, storeys, roof, surface, tone, tilt);
            if self.rng.chance(0.5) {
                let n = 1 + self.rng.below(3);
                for _ in 0..n {
                    let edge = lot.shrink(-2.0);
                    let p = if self.rng.chance(0.5) { edge.p0 } else { edge.p1 };
                    let q = self.rng.range(edge.q0, edge.q1);
                    self.tree_at(layout, p, q);
                }
            }
        }
    }

    fn houses_block(&mut self, layout: &Layout, area: Area) {
        // Two rows of parcels, front on the q0 and q1 streets.
        let half = area.depth() / 2.0;
        for front_at_q0 in [true, false] {
            let row = if front_at_q0 { Area { q1: area.q0 + half, ..area } } else { Area { q0: area.q1 - half, ..area } };
            let mut p = row.p0;
            while p < row.p1 - 10.0 {
                let mut wdt = self.rng.range(14.0, 26.0);
                if row.p1 - (p + wdt) < 10.0 {
                    wdt = row.p1 - p;
                }
                let parcel = Area { p0: p, p1: p + wdt, ..row };
                self.house(layout, parcel, front_at_q0);
                p += wdt;
            }
        }
    }

    fn house(&mut self, layout: &Layout, parcel: Area, front_at_q0: bool) {
        let setback = self.rng.range(3.0, 8.0);
        let side_gap = self.rng.range(2.0, 4.0);
        let hw = self.rng.range(8.0, 13.0).min(parcel.width() - 2.0 * side_gap);
        let hd = self.rng.range(8.0, 12.0).min(parcel.depth() - setback - 3.0);
        if hw < 6.0 || hd < 6.0 {
            return;
        }
        let p0 = self.rng.range(parcel.p0 + side_gap, parcel.p1 - side_gap - hw);
        let (q0, q1) = if front_at_q0 { (parcel.q0 + setback, parcel.q0 + setback + hd) } else { (parcel.q1 - setback - hd, parcel.q1 - setback) };
        let footprint = Area { p0, p1: p0 + hw, q0, q1 };
        let wings = if self.rng.chance(0.35) { self.footprint(footprint, false) } else { vec![footprint] };
        let (roof, surface, tone) = self.roof_choice(0.15);
        let storeys = self.rng.range(1.0, 2.6).floor();
        let tilt = if self.rng.chance(0.15) { self.rng.range(-0.15, 0.15) } else { 0.0 };
        self.building(layout, &wings, storeys, roof, surface, tone, tilt);
        // Garden trees at the back.
        let back = if front_at_q0 { Area { q0: q1 + 1.0, ..parcel } } else { Area { q1: q0 - 1.0, ..parcel } };
        if back.depth() > 3.0 {
            let n = self.rng.below(4);
            for _ in 0..n {
                self.tree_in(layout, back.shrink(1.0));
            }
        }
        // Wall or hedge along one side boundary.
        if self.rng.chance(0.55) {
            let hedge = self.rng.chance(0.5);
            let thick = if hedge { self.rng.range(0.6, 1.2) } else { self.rng.range(0.2, 0.35) };
            let height = if hedge { self.rng.range(1.0, 2.2) } else { self.rng.range(0.8, 2.0) };
            let p = if self.rng.chance(0.5) { parcel.p0 + thick / 2.0 } else { parcel.p1 - thick / 2.0 };
            let wall = Area { p0: p - thick / 2.0, p1: p + thick / 2.0, q0: parcel.q0 + 0.2, q1: parcel.q1 - 0.2 };
            let tone = if hedge { self.rng.range(0.12, 0.22) } else { self.rng.range(0.4, 0.65) } as f32;
            self.wall(layout, wall, height, Kind::Wall { tone, hedge });
        }
        // A car on the driveway, a garden shed.
        if self.rng.chance(0.5) {
            let p = if p0 - parcel.p0 > parcel.p1 - (p0 + hw) { (parcel.p0 + p0) / 2.0 } else { (p0 + hw + parcel.p1) / 2.0 };
            let q = if front_at_q0 { parcel.q0 + setback / 2.0 + 1.0 } else { parcel.q1 - setback / 2.0 - 1.0 };
            self.car(layout, p, q, false);
        }
        if self.rng.chance(0.25) && back.depth() > 6.0 && back.width() > 6.0 {
            let p = self.rng.range(back.p0 + 0.5, back.p1 - 4.0);
            let q = self.rng.range(back.q0 + 0.5, back.q1 - 3.0);
            let (roof, surface, tone) = self.roof_choice(0.5);
            self.building(layout, &[Area { p0: p, p1: p + 3.5, q0: q, q1: q + 2.5 }], 0.8, roof, surface, tone, 0.0);
        }
    }

    fn wall(&mut self, layout: &Layout, a: Area, height: f64, kind: Kind) {
        let (x, y) = layout.world((a.p0 + a.p1) / 2.0, (a.q0 + a.q1) / 2.0);
        let base = self.ground(x, y);
        let rect = Rect { x, y, c: layout.c, s: layout.s, ha: a.width() / 2.0, hb: a.depth() / 2.0 };
        let top = base + height;
        self.push(Shape::Block(Block { rect, base_m: base, eave_m: top, ridge_m: top, roof: Roof::Flat, parapet_m: 0.0 }), kind);
    }

    fn car(&mut self, layout: &Layout, p: f64, q: f64, along_p: bool) {
        let (x, y) = layout.world(p, q);
        let base = self.ground(x, y);
        let rng = &mut self.rng;
        let (len, wid) = (rng.range(4.0, 4.9), rng.range(1.7, 1.9));
        let (ha, hb) = (len / 2.0, wid / 2.0);
        let flip = rng.chance(0.5);
        let (c, s) = if along_p { (layout.c, layout.s) } else { (-layout.s, layout.c) };
        let (c, s) = if flip { (-c, -s) } else { (c, s) };
        let (c, s) = rotate(c, s, rng.range(-0.04, 0.04));
        let body = base + rng.range(0.85, 1.05);
        let roof = base + rng.range(1.4, 1.6);
        let tone = [rng.range(0.05, 0.15), rng.range(0.5, 0.8), rng.range(0.25, 0.5)][rng.below(3)] as f32;
        self.push(
            Shape::Block(Block { rect: Rect { x, y, c, s, ha, hb }, base_m: base, eave_m: body, ridge_m: roof, roof: Roof::Car, parapet_m: 0.0 }),
            Kind::Car { tone },
        );
    }

    fn tree_in(&mut self, layout: &Layout, a: Area) {
        if a.width() <= 0.0 || a.depth() <= 0.0 {
            return;
        }
        let p = self.rng.range(a.p0, a.p1);
        let q = self.rng.range(a.q0, a.q1);
        self.tree_at(layout, p, q);
    }

    fn tree_at(&mut self, layout: &Layout, p: f64, q: f64) {
        let (x, y) = layout.world(p, q);
        let base = self.ground(x, y);
        let rng = &mut self.rng;
        let conifer = rng.chance(0.12);
        let r = if conifer { rng.range(1.2, 3.0) } else { rng.range(1.8, 5.5) };
        let height = (r * rng.range(1.6, 3.2)).clamp(3.5, 22.0);
        let depth = height * rng.range(0.45, 0.75);
        let mut caps = vec![Cap { x, y, r, top_m: base + height, depth_m: depth, cone: conifer }];
        if !conifer {
            for _ in 0..2 + rng.below(4) {
                let (ux, uy) = rng.unit_vector();
                let off = r * rng.range(0.25, 0.6);
                let rr = r * rng.range(0.4, 0.7);
                caps.push(Cap {
                    x: x + ux * off,
                    y: y + uy * off,
                    r: rr,
                    top_m: base + height - rng.range(0.0, 0.3) * height * (off / r),
                    depth_m: depth * rng.range(0.6, 1.0),
                    cone: false,
                });
            }
        }
        let radius_m = caps.iter().map(|c| ((c.x - x) * (c.x - x) + (c.y - y) * (c.y - y)).sqrt() + c.r).fold(0.0, f64::max);
        let tone = rng.range(0.08, 0.2) as f32;
        let bump_m = if conifer { 0.15 } else { rng.range(0.15, 0.5) };
        self.push(Shape::Tree(Tree { x, y, radius_m, caps, bump_m }), Kind::Tree { tone });
    }

    fn park(&mut self, layout: &Layout, area: Area, density_per_m2: f64) {
        let a = area.shrink(1.0);
        if a.width() < 2.0 || a.depth() < 2.0 {
            return;
        }
        let n = (a.width() * a.depth() * density_per_m2 * self.rng.range(0.5, 1.5)) as usize;
        // Clustered: half the trees around a few centres.
        let centres: Vec<(f64, f64)> = (0..1 + self.rng.below(3)).map(|_| (self.rng.range(a.p0, a.p1), self.rng.range(a.q0, a.q1))).collect();
        for k in 0..n {
            if k % 2 == 0 {
                let (cp, cq) = centres[self.rng.below(centres.len())];
                let (ux, uy) = self.rng.unit_vector();
                let d = self.rng.range(0.0, 15.0);
                let (p, q) = ((cp + ux * d).clamp(a.p0, a.p1), (cq + uy * d).clamp(a.q0, a.q1));
                self.tree_at(layout, p, q);
            } else {
                self.tree_in(layout, a);
            }
        }
    }

    fn parking(&mut self, layout: &Layout, area: Area) {
        let a = area.shrink(PARKING_MARGIN_M);
        // Rows of stalls 5 m deep along p, aisles 6 m; stalls 2.5 m wide.
        let occupancy = self.rng.range(0.3, 0.9);
        let mut q = a.q0;
        let mut row = 0;
        while q + PARKING_ROW_M <= a.q1 {
            let mut p = a.p0 + PARKING_STALL_M / 2.0;
            while p + PARKING_STALL_M / 2.0 <= a.p1 {
                if self.rng.chance(occupancy) {
                    self.car(layout, p, q + PARKING_ROW_M / 2.0, false);
                }
                p += PARKING_STALL_M;
            }
            q += parking_row_step(row);
            row += 1;
        }
    }

    fn square(&mut self, layout: &Layout, area: Area) {
        let a = area.shrink(self.rng.range(6.0, 15.0));
        if a.width() > 18.0 && a.depth() > 18.0 {
            let (w, d) = (self.rng.range(14.0, a.width().min(35.0)), self.rng.range(14.0, a.depth().min(35.0)));
            let p0 = self.rng.range(a.p0, a.p1 - w);
            let q0 = self.rng.range(a.q0, a.q1 - d);
            let tower = Area { p0, p1: p0 + w, q0, q1: q0 + d };
            let storeys = self.rng.range(8.0, 26.0).floor();
            let (_, surface, tone) = self.roof_choice(1.0);
            self.building(layout, &[tower], storeys, Roof::Flat, surface, tone, 0.0);
        }
        // Trees in rows along the edges of the square: repetitive structure.
        let step = self.rng.range(7.0, 12.0);
        let inset = self.rng.range(3.0, 5.0);
        let inner = area.shrink(inset);
        if inner.width() > 0.0 && inner.depth() > 0.0 {
            let mut p = inner.p0;
            while p <= inner.p1 {
                self.tree_at(layout, p, inner.q0);
                self.tree_at(layout, p, inner.q1);
                p += step;
            }
            let mut q = inner.q0 + step;
            while q < inner.q1 {
                self.tree_at(layout, inner.p0, q);
                self.tree_at(layout, inner.p1, q);
                q += step;
            }
        }
    }

    fn street_furniture(&mut self, layout: &Layout) {
        let (x0, x1, y0, y1) = self.region;
        let (rx, ry) = (x0.abs().max(x1.abs()), y0.abs().max(y1.abs()));
        let reach = (rx * rx + ry * ry).sqrt();
        for (streets, along_p) in [(layout.p_streets.clone(), false), (layout.q_streets.clone(), true)] {
            for st in streets {
                // Parked cars along both curbs, street trees along both sidewalks.
                for side in [-1.0, 1.0] {
                    let parked = self.rng.chance(0.6);
                    let trees = st.walk_m > 1.5 && self.rng.chance(0.35);
                    let tree_step = self.rng.range(7.0, 12.0);
                    let mut t = -reach;
                    let mut next_tree = -reach;
                    while t < reach {
                        let off = st.pos_m + side * (st.half_m - 1.2);
                        let (p, q) = if along_p { (t, off) } else { (off, t) };
                        let (x, y) = layout.world(p, q);
                        let inside = x > x0 && x < x1 && y > y0 && y < y1;
                        if parked && inside && self.rng.chance(0.55) && st.half_m > 3.5 && !self.near_crossing(layout, p, q) {
                            self.car(layout, p, q, along_p);
                        }
                        if trees && t >= next_tree {
                            let off = st.pos_m + side * (st.half_m + st.walk_m * 0.6);
                            let (p, q) = if along_p { (t, off) } else { (off, t) };
                            let (x, y) = layout.world(p, q);
                            if x > x0 && x < x1 && y > y0 && y < y1 && !self.near_crossing(layout, p, q) {
                                self.tree_at(layout, p, q);
                            }
                            next_tree = t + tree_step;
                        }
                        t += self.rng.range(5.5, 7.5);
                    }
                }
            }
        }
    }

    /// True near an intersection (no parking, no trees there).
    fn near_crossing(&self, layout: &Layout, p: f64, q: f64) -> bool {
        let close = |streets: &[Street], v: f64| streets.iter().any(|s| (v - s.pos_m).abs() < s.outer() + 4.0);
        close(&layout.p_streets, p) && close(&layout.q_streets, q)
    }
}
