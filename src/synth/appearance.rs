//! Albedo: what each surface looks like, as a function of the 3-D point only.
//!
//! Because the albedo depends on the world point and never on the view, a point has the same
//! albedo in both images and the only differences between the views are geometry,
//! foreshortening, the light (`--time-gap`) and the camera models, which is what the ground
//! truth accounts for. The one deliberate exception is leaves in the wind (`--wind`): a
//! crown's texture is displaced per view while its surface, and so the ground truth, stays.
//! User textures ([`super::textures`]) are fixed to the world point too: each material that
//! uses one samples its own crop (origin, quarter turn, texel size drawn per pair).
//! Materials mix several scales, as real aerial images do: per-block tone, metre-scale
//! patches, decimetre texture (grass clumps, gravel, leaves) and regular patterns (roof
//! tiles, paving slabs, furrows, parking stalls, road markings, facade windows). Some are
//! deliberately near-uniform (membrane roofs, asphalt, shadows) or periodic, because those
//! are where matching fails.

use super::geometry::Roof;
use super::noise::{fade, floor};
use super::rng::hash2_unit;
use super::scene::{
    parking_row_step, Cover, Kind, Place, RoofSurface, Scene, Shape, TextureUse, PARKING_MARGIN_M, PARKING_ROW_M,
    PARKING_STALL_M,
};
use std::sync::Arc;

/// A grey texture image in [0, 1] given by the user.
#[derive(Debug)]
pub struct Texture {
    /// Width (px).
    pub width: usize,
    /// Height (px).
    pub height: usize,
    /// Values, row-major.
    pub values: Vec<f32>,
    /// Mean value.
    pub mean: f32,
    /// Where it comes from and a fingerprint of its values (FNV-1a of the f32 bits), for the
    /// manifest.
    pub source: String,
    /// See `source`.
    pub fingerprint: u64,
}

impl Texture {
    /// Builds a texture from grey values in [0, 1].
    pub fn new(width: usize, height: usize, values: Vec<f32>) -> Texture {
        let mean = (values.iter().map(|&v| v as f64).sum::<f64>() / values.len().max(1) as f64) as f32;
        let mut fingerprint = 0xCBF2_9CE4_8422_2325u64;
        for v in &values {
            for b in v.to_bits().to_le_bytes() {
                fingerprint = (fingerprint ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
            }
        }
        Texture { width, height, values, mean, source: String::new(), fingerprint }
    }

    /// Bilinear sample with mirrored repeat, in texels: a photograph has no seam-free
    /// period, but its mirror image continues it without a step at the border.
    fn sample(&self, u: f64, v: f64) -> f32 {
        let (fu, fv) = (floor(u), floor(v));
        let (tu, tv) = ((u - fu) as f32, (v - fv) as f32);
        let (i0, j0) = (mirror(fu as i64, self.width), mirror(fv as i64, self.height));
        let (i1, j1) = (mirror(fu as i64 + 1, self.width), mirror(fv as i64 + 1, self.height));
        let at = |i: usize, j: usize| self.values[j * self.width + i];
        let a = at(i0, j0) + (at(i1, j0) - at(i0, j0)) * tu;
        let b = at(i0, j1) + (at(i1, j1) - at(i0, j1)) * tu;
        a + (b - a) * tv
    }
}

/// Index `i` folded into `0..n` by mirrored repeat (… 1 0 | 0 1 … n−1 | n−1 …).
#[inline]
fn mirror(i: i64, n: usize) -> usize {
    let n = n as i64;
    let k = i.rem_euclid(2 * n);
    (if k < n { k } else { 2 * n - 1 - k }) as usize
}

/// How a material's grey value reacts to a change of white balance: a grey image made from
/// colour weighs the channels, so a colour shift brightens vegetation and red tiles by other
/// factors than neutral concrete or asphalt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tint {
    /// Greys: asphalt, concrete, gravel, membranes, metal.
    Neutral = 0,
    /// Vegetation: grass, fields, hedges, green roofs, tree crowns.
    Green = 1,
    /// Reddish: roof tiles.
    Warm = 2,
}

/// Amplitude of the wind's displacement of leaf texture at `--wind 1` (m).
pub const WIND_M: f64 = 0.35;
/// Size of the patches of leaves that move together (m).
const GUST_M: f64 = 1.3;

/// The albedo functions of one scene.
pub struct Appearance<'a> {
    scene: &'a Scene,
    textures: Arc<Vec<Texture>>,
    /// Size of a pixel on the ground (m): texture finer than this is averaged out, as a
    /// camera's pixel would, instead of aliasing differently in the two views.
    pixel_m: f64,
    /// Amplitude of the leaf texture's displacement in tree crowns (m), 0 = rigid.
    wind_m: f64,
}

#[inline]
fn frac(v: f64) -> f64 {
    v - floor(v)
}

/// Mean over [u − w/2, u + w/2] of the periodic indicator `frac(u / period) < duty`: a
/// stripe pattern box-filtered over a pixel footprint `w`, so it does not alias.
#[inline]
fn stripe(u: f64, period: f64, duty: f64, w: f64) -> f32 {
    let on = duty * period;
    let integral = |v: f64| {
        let k = floor(v / period);
        k * on + (v - k * period).min(on)
    };
    ((integral(u + w / 2.0) - integral(u - w / 2.0)) / w).clamp(0.0, 1.0) as f32
}

/// Mean over [u − w/2, u + w/2] of the indicator |u| < half.
#[inline]
fn band(u: f64, half: f64, w: f64) -> f32 {
    let overlap = (u + w / 2.0).min(half) - (u - w / 2.0).max(-half);
    (overlap / w).clamp(0.0, 1.0) as f32
}

/// Brightness of a texture use around `tone`: the crop of the texture that starts at
/// `usage.origin_px`, turned by `usage.quarter_turns` × 90°, one texel per `texel_m`.
fn textured(tex: &Texture, usage: &TextureUse, x: f64, y: f64, tone: f32) -> f32 {
    let (a, b) = (x / usage.texel_m, y / usage.texel_m);
    let (u, v) = match usage.quarter_turns & 3 {
        0 => (a, b),
        1 => (-b, a),
        2 => (-a, -b),
        _ => (b, -a),
    };
    tone + usage.contrast * (tex.sample(u + usage.origin_px.0, v + usage.origin_px.1) - tex.mean)
}

impl<'a> Appearance<'a> {
    /// Albedo of `scene`, with the user textures; `wind` scales the sway of tree crowns
    /// (`--wind`).
    pub fn new(scene: &'a Scene, textures: Arc<Vec<Texture>>, wind: f64) -> Self {
        Appearance { scene, textures, pixel_m: scene.camera.gsd_m, wind_m: WIND_M * wind }
    }

    /// Whether object `id`'s top surface looks different in each view (a swaying crown).
    #[inline]
    pub fn sways(&self, id: u32) -> bool {
        self.wind_m > 0.0 && id != 0 && matches!(self.scene.objects[id as usize - 1].shape, Shape::Tree(_))
    }

    /// Where view `view` sees the leaf texture of crown point (x, y): displaced by a smooth
    /// field drawn per view, so each patch of leaves moves a little between the two shots.
    #[inline]
    fn sway(&self, x: f64, y: f64, view: usize) -> (f64, f64) {
        if self.wind_m == 0.0 {
            return (x, y);
        }
        let k = 59.0 + 173.0 * view as f64;
        let n = &self.scene.noise;
        let (u, v) = (x / GUST_M, y / GUST_M);
        (x + self.wind_m * n.value(u + k, v - 7.0) as f64, y + self.wind_m * n.value(u - 31.0, v + k) as f64)
    }

    /// How much of a texture feature of size `feature_m` survives averaging over a pixel.
    #[inline]
    fn fade(&self, feature_m: f64) -> f32 {
        fade(feature_m, self.pixel_m)
    }

    /// Value noise of feature size `feature_m`, faded out below the pixel size.
    #[inline]
    fn v(&self, x: f64, y: f64, feature_m: f64) -> f32 {
        let k = self.fade(feature_m);
        if k == 0.0 { 0.0 } else { k * self.scene.noise.value(x / feature_m, y / feature_m) }
    }

    /// Fractal noise whose octaves finer than a pixel are faded out.
    #[inline]
    fn f(&self, x: f64, y: f64, scale_m: f64, octaves: u32) -> f32 {
        self.scene.noise.fbm_limited(x, y, scale_m, octaves, self.pixel_m)
    }

    /// Coverage of the joints of a square grid of `size` m with joints `duty` × size wide.
    #[inline]
    fn grid(&self, u: f64, v: f64, size: f64, duty: f64) -> f32 {
        let (a, b) = (stripe(u, size, duty, self.pixel_m), stripe(v, size, duty, self.pixel_m));
        1.0 - (1.0 - a) * (1.0 - b)
    }

    fn user(&self, usage: &Option<TextureUse>, x: f64, y: f64, tone: f32) -> Option<f32> {
        usage.as_ref().map(|u| textured(&self.textures[u.texture], u, x, y, tone))
    }

    /// Albedo of the top surface of object `id` (0 = ground) at (x, y, z) as view `view`
    /// sees it (only swaying crowns differ between views), and its tint.
    pub fn top(&self, id: u32, x: f64, y: f64, z: f64, view: usize) -> (f32, Tint) {
        let (a, tint) = if id == 0 { self.ground(x, y) } else { (self.object_top(id, x, y, z, view), self.object_tint(id)) };
        (a.clamp(0.01, 0.95), tint)
    }

    /// Tint of the sides of object `id`: leaves are green, walls and cars neutral.
    #[inline]
    pub fn facade_tint(&self, id: u32) -> Tint {
        let obj = &self.scene.objects[id as usize - 1];
        match (&obj.shape, obj.kind) {
            (Shape::Tree(_), _) | (_, Kind::Tree { .. }) | (_, Kind::Wall { hedge: true, .. }) => Tint::Green,
            _ => Tint::Neutral,
        }
    }

    fn object_tint(&self, id: u32) -> Tint {
        match self.scene.objects[id as usize - 1].kind {
            Kind::Wing { roof: RoofSurface::Tiles, .. } => Tint::Warm,
            Kind::Wing { roof: RoofSurface::Green, .. } | Kind::Tree { .. } | Kind::Wall { hedge: true, .. } => Tint::Green,
            _ if matches!(self.scene.objects[id as usize - 1].shape, Shape::Tree(_)) => Tint::Green,
            _ => Tint::Neutral,
        }
    }

    fn ground(&self, x: f64, y: f64) -> (f32, Tint) {
        let s = self.scene;
        let lay = &s.layout;
        // Large, soft brightness variation common to everything on the ground.
        let broad = 0.03 * self.f(x - 500.0, y + 300.0, 25.0, 2);
        let mut tint = Tint::Neutral;
        let a = match lay.place(x, y) {
            Place::Road { across, along, half, crossing, zebra } => {
                let a = lay.asphalt_tone + 0.025 * self.v(x, y, 0.1429) + 0.03 * self.f(x, y, 4.0, 2);
                let pw = self.pixel_m;
                let paint = if zebra {
                    stripe(across - 0.25, 1.0, 0.5, pw) * band(across, half - 0.3, pw)
                } else if !crossing {
                    let centre = if half > 3.5 { band(across, 0.07, pw) * stripe(along, 9.0, 0.4, pw) } else { 0.0 };
                    let edge = if half > 5.0 { band(across.abs() - (half - 0.35), 0.07, pw) } else { 0.0 };
                    centre.max(edge)
                } else {
                    0.0
                };
                a + (0.72 - a) * paint
            }
            Place::Walk { u, v } => {
                let size = 0.6;
                let (i, j) = (floor(u / size), floor(v / size));
                let joint = self.grid(u, v, size, 0.06);
                let slab = (hash2_unit(s.seed ^ 0x51AB, i as i64, j as i64) - 0.5) as f32 * 0.06 * self.fade(size);
                let a = lay.walk_tone + slab + 0.02 * self.v(x, y, 0.1111);
                self.user(&s.textures.paved, x, y, a).unwrap_or(a - 0.08 * joint)
            }
            Place::Block { index, u, v } => {
                let info = lay.blocks[index];
                let t = info.tone;
                let seed = info.seed;
                if matches!(info.cover, Cover::Grass | Cover::Field) {
                    tint = Tint::Green;
                }
                match info.cover {
                    Cover::Grass => self.user(&s.textures.grass, x, y, t).unwrap_or_else(|| {
                        t + 0.06 * self.f(x, y, 0.5, 2) + 0.05 * self.f(x + 77.0, y, 7.0, 2) + 0.03 * self.v(x, y, 0.0833)
                    }),
                    Cover::Field => self.user(&s.textures.field, x, y, t).unwrap_or_else(|| {
                        let period = 0.7 + 0.5 * (seed % 100) as f64 / 100.0;
                        let w = frac(u / period);
                        let furrow = ((if w < 0.5 { w } else { 1.0 - w }) as f32 * 0.16 - 0.04) * self.fade(period / 2.0);
                        t + furrow + 0.04 * self.f(x, y, 3.0, 2) + 0.03 * self.v(x, y, 0.1000)
                    }),
                    Cover::Gravel => t + 0.09 * self.v(x, y, 0.0714) + 0.04 * self.f(x, y, 2.0, 2),
                    Cover::Paved => self.user(&s.textures.paved, x, y, t).unwrap_or_else(|| {
                        let size = 1.0 + (seed % 5) as f64 * 0.1;
                        let joint = self.grid(u, v, size, 0.04);
                        let a = t + 0.02 * self.v(x, y, 0.1250) + 0.03 * self.f(x, y, 5.0, 2);
                        a - 0.07 * joint
                    }),
                    Cover::Parking => {
                        let a = lay.asphalt_tone + 0.025 * self.v(x, y, 0.1429) + 0.03 * self.f(x, y, 4.0, 2);
                        a + (0.68 - a) * self.stall_line(index, u, v)
                    }
                }
            }
        };
        (a + broad, tint)
    }

    /// Coverage of the white lines of a car park (block `index`, city coordinates u, v).
    fn stall_line(&self, index: usize, u: f64, v: f64) -> f32 {
        let lay = &self.scene.layout;
        let nq = lay.q_streets.len() - 1;
        let (i, j) = (index / nq, index % nq);
        let p0 = lay.p_streets[i].pos_m + lay.p_streets[i].half_m + lay.p_streets[i].walk_m + PARKING_MARGIN_M;
        let q0 = lay.q_streets[j].pos_m + lay.q_streets[j].half_m + lay.q_streets[j].walk_m + PARKING_MARGIN_M;
        let (du, mut dv) = (u - p0, v - q0);
        if du < 0.0 || dv < 0.0 {
            return 0.0;
        }
        let mut row = 0;
        while dv >= parking_row_step(row) {
            dv -= parking_row_step(row);
            row += 1;
            if row > 1000 {
                return 0.0;
            }
        }
        if dv >= PARKING_ROW_M {
            return 0.0;
        }
        let pw = self.pixel_m;
        stripe(du - 0.06, PARKING_STALL_M, 0.12 / PARKING_STALL_M, pw).max(band(dv - 0.06, 0.06, pw))
    }

    fn object_top(&self, id: u32, x: f64, y: f64, z: f64, view: usize) -> f32 {
        let s = self.scene;
        let obj = &s.objects[id as usize - 1];
        match (&obj.shape, obj.kind) {
            (Shape::Block(b), Kind::Wing { roof, roof_tone, .. }) => {
                let (a, bb) = b.rect.local(x, y);
                if b.roof == Roof::Flat && b.parapet_m > 0.0 && z > b.eave_m + 0.5 * b.parapet_m {
                    return roof_tone.max(0.45) + 0.1 + 0.02 * self.v(x, y, 0.1667);
                }
                // Coordinates along the ridge (su) and down the slope (sv).
                let (su, sv) = if b.slope_axis_is_b() { (a, bb.abs()) } else { (bb, a.abs()) };
                let t = roof_tone;
                match roof {
                    RoofSurface::Tiles => {
                        let (rh, tw) = (0.33, 0.25);
                        let row = floor(sv / rh);
                        let col = floor(su / tw + 0.5 * (row as i64 & 1) as f64);
                        let tile = (hash2_unit(obj.seed, row as i64, col as i64) - 0.5) as f32 * 0.08 * self.fade(tw);
                        let lip = -0.07 * stripe(sv - 0.82 * rh, rh, 0.18, self.pixel_m);
                        let ridge = if b.roof != Roof::Shed { -0.05 * band(sv, 0.15, self.pixel_m) } else { 0.0 };
                        t + tile + lip + ridge + 0.02 * self.v(x, y, 0.1111) + 0.03 * self.f(x, y, 3.0, 2)
                    }
                    RoofSurface::Metal => {
                        let seam = 0.06 * stripe(su, 0.5, 0.08, self.pixel_m);
                        t + seam + 0.01 * self.v(x, y, 0.1667) + 0.02 * self.f(x, y, 4.0, 1)
                    }
                    RoofSurface::Membrane => self.user(&s.textures.flat_roof, x, y, t).unwrap_or_else(|| {
                        let seam = -0.015 * stripe(su, 1.0, 0.03, self.pixel_m);
                        t + seam + 0.008 * self.v(x, y, 0.2000) + 0.02 * self.f(x + 31.0, y, 3.0, 2)
                    }),
                    RoofSurface::Gravel => self.user(&s.textures.flat_roof, x, y, t).unwrap_or_else(|| {
                        t + 0.08 * self.v(x, y, 0.0667) + 0.03 * self.f(x, y, 2.0, 2)
                    }),
                    RoofSurface::Green => t + 0.06 * self.f(x, y, 0.3, 2) + 0.04 * self.f(x, y, 3.0, 2),
                }
            }
            (Shape::Block(b), Kind::Car { tone }) => {
                let (a, bb) = b.rect.local(x, y);
                let t = (a / b.rect.ha + 0.08).abs();
                let glass = (0.42..0.62).contains(&t) || (t < 0.42 && bb.abs() > 0.7 * b.rect.hb);
                if glass { 0.07 } else { tone + 0.02 * self.v(x, y, 0.1000) }
            }
            (_, Kind::Fixture { tone }) => tone + 0.02 * self.v(x, y, 0.1250),
            (_, Kind::Wall { tone, hedge }) => {
                if hedge {
                    tone + 0.06 * self.f(x, y, 0.25, 2)
                } else {
                    tone + 0.03 * self.v(x, y, 0.1000)
                }
            }
            (_, Kind::Tree { tone }) => foliage(self, tone, x, y, z, view),
            (Shape::Tree(_), _) => foliage(self, 0.12, x, y, z, view),
        }
    }

    /// Albedo of a facade point of object `id` as view `view` sees it; `normal` is its
    /// outward horizontal normal.
    pub fn facade(&self, id: u32, x: f64, y: f64, z: f64, normal: (f64, f64), view: usize) -> f32 {
        let s = self.scene;
        let obj = &s.objects[id as usize - 1];
        let a = match (&obj.shape, obj.kind) {
            (Shape::Block(b), Kind::Wing { facade, .. }) => {
                let (la, lb) = b.rect.local(x, y);
                // Along-facade coordinate: the local axis parallel to the wall.
                let (nc, ns) = (b.rect.c * normal.0 + b.rect.s * normal.1, -b.rect.s * normal.0 + b.rect.c * normal.1);
                let along = if nc.abs() > ns.abs() { lb } else { la };
                let h = z - b.base_m - 0.3;
                let storey = facade.storey_m as f64;
                let in_storey = frac(h / storey) * storey;
                let bay = facade.bay_m as f64;
                let in_bay = frac(along / bay) * bay;
                let margin = (bay - facade.window_w_m as f64) / 2.0;
                let window = h > 0.0
                    && z < b.eave_m - 0.3
                    && in_storey > 0.9
                    && in_storey < 0.9 + facade.window_h_m as f64
                    && in_bay > margin
                    && in_bay < bay - margin;
                if window {
                    let pane = hash2_unit(obj.seed, floor(h / storey) as i64, floor(along / bay) as i64) as f32;
                    facade.glass + 0.1 * pane
                } else if z > b.eave_m - 0.05 && b.roof != Roof::Flat {
                    // The gable's triangle and the eaves: roof-coloured.
                    facade.tone * 0.9
                } else {
                    facade.tone + 0.02 * self.v(along, z, 0.1667)
                }
            }
            (Shape::Block(_), Kind::Car { tone }) => {
                if z > obj.top_m() - 0.55 { 0.08 } else { tone * 0.85 }
            }
            (_, Kind::Tree { tone }) => foliage(self, tone, x, y, z, view) * 0.9,
            (_, Kind::Wall { tone, hedge: true }) => tone + 0.06 * self.f(x + z, y, 0.25, 2),
            (_, Kind::Wall { tone, .. }) | (_, Kind::Fixture { tone }) => tone * 0.95 + 0.02 * self.v(x + z, y, 0.1250),
            (Shape::Tree(_), _) => foliage(self, 0.12, x, y, z, view),
        };
        a.clamp(0.01, 0.95)
    }
}

/// Leaves: procedural, or a real texture when the scene drew one for crowns; displaced by
/// the wind per view (the crown's shape, hence the ground truth, stays put).
fn foliage(look: &Appearance, tone: f32, x: f64, y: f64, z: f64, view: usize) -> f32 {
    let (x, y) = look.sway(x, y, view);
    look.user(&look.scene.textures.foliage, x, y, tone)
        .unwrap_or_else(|| tone + 0.07 * look.f(x + z, y - z, 0.35, 2) + 0.04 * look.v(x, y, 0.1111))
}
