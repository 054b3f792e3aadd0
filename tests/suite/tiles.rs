//! Tiled matching: tiles partition a level, per-region interval bounds equal the whole-level
//! ones, and tiled runs agree with untiled runs.

use crate::common::{config, planar_scene, Rng};
use deepsim::eval::{evaluate, nonocc_from_gt};
use deepsim::pipeline::{pyramid_steps, run, LrCheckMode, NoProgress, Regularizer};
use deepsim::pyramid::{propagate, propagated_bounds, CoarseWindow, Propagation};
use deepsim::sgm::lines::{LineParams, MaskLabel};
use deepsim::similarity::{Census, Similarity};
use deepsim::tiles::{tiles, Region, TileParams};
use ndarray::Array2;

#[test]
fn tile_cores_partition_the_level_and_outer_rectangles_hold_their_overlap() {
    for (w, h, size, overlap) in [(100, 70, 32, 8), (33, 33, 32, 5), (640, 480, 612, 20), (17, 300, 16, 40)] {
        let list = tiles(w, h, Some(TileParams { size_px: size, overlap_px: overlap }));
        let mut count = Array2::<u32>::zeros((h, w));
        for t in &list {
            assert!(t.core.width() <= size && t.core.height() <= size, "{t:?}");
            assert_eq!(t.outer, t.core.grow(overlap, w, h));
            for y in t.core.y0..t.core.y1 {
                for x in t.core.x0..t.core.x1 {
                    count[(y, x)] += 1;
                }
            }
        }
        assert!(count.iter().all(|&c| c == 1), "{w}×{h} tiles of {size}: every pixel in exactly one core");
    }
    assert_eq!(tiles(50, 40, None), tiles(50, 40, Some(TileParams { size_px: 64, overlap_px: 8 })), "one tile when it fits");
}

#[test]
fn bounds_of_a_region_equal_the_whole_level_bounds_there() {
    let mut rng = Rng::new(4);
    let (wc, hc) = (20, 15);
    let coarse = Array2::from_shape_fn((hc, wc), |_| rng.range(-6, 9) as i32);
    let propagation = Propagation { dilate_alti_px: 3, dilate_plani_px: 2, uncertain_full_range: true };
    let (w, h) = (2 * wc - 1, 2 * hc);
    let whole = propagate(&coarse, w, h, propagation, (-20, 20), 2).unwrap();
    for region in [Region { x0: 0, y0: 0, x1: w, y1: h }, Region { x0: 5, y0: 3, x1: 17, y1: 29 }, Region { x0: 30, y0: 0, x1: w, y1: 1 }] {
        let (lo, hi) = propagated_bounds(&CoarseWindow::whole(&coarse), w, h, propagation, (-20, 20), 2, region);
        // Only the coarse pixels the region needs (what tiles read from a scratch file).
        let needed = CoarseWindow::needed(region, w, h, propagation, 2, wc, hc);
        let part = coarse.slice(ndarray::s![needed.y0..needed.y1, needed.x0..needed.x1]);
        let window = CoarseWindow { values: part, x0: needed.x0, y0: needed.y0, width: wc, height: hc };
        assert_eq!(propagated_bounds(&window, w, h, propagation, (-20, 20), 2, region), (lo.clone(), hi.clone()), "{region:?}");
        let mut k = 0;
        for y in region.y0..region.y1 {
            for x in region.x0..region.x1 {
                assert_eq!((lo[k], hi[k]), (whole.d_min(x, y), whole.d_min(x, y) + whole.len(x, y) as i32 - 1), "({x}, {y}) in {region:?}");
                k += 1;
            }
        }
    }
}

#[test]
fn tiled_runs_agree_with_untiled_runs() {
    let scene = planar_scene(31, 360, 240);
    let census = Census::new(7, 7).unwrap();
    let valid = Array2::from_elem(scene.gt.dim(), true);
    let nonocc = nonocc_from_gt(&scene.gt, &valid, 360);
    let micmac = Regularizer::Micmac(LineParams {
        orientations: 7,
        weight: 0.02,
        max_slope: 16.0,
        mask: Some(MaskLabel { cost: 0.35, transition: 0.5 }),
    });
    for (name, regularizer, mode) in
        [("sgm", None, LrCheckMode::Fast), ("sgm, accurate left-right check", None, LrCheckMode::Accurate), ("micmac", Some(micmac), LrCheckMode::Fast)]
    {
        let mut untiled = config(0, 40, 2);
        untiled.lr_check_mode = mode;
        if let Some(r) = regularizer {
            untiled.steps = pyramid_steps(2, r, Propagation { dilate_alti_px: 4, dilate_plani_px: 2, uncertain_full_range: true }, |_| 0);
        }
        let mut tiled = untiled.clone();
        tiled.tiles = Some(TileParams { size_px: 80, overlap_px: 32 });
        let a = run(&scene.pair, &untiled, &[&census as &dyn Similarity], &NoProgress).unwrap();
        let b = run(&scene.pair, &tiled, &[&census as &dyn Similarity], &NoProgress).unwrap();
        assert!(b.reports.last().unwrap().tiles >= 9, "{name}: tiles {}", b.reports.last().unwrap().tiles);
        // SGM paths cross the whole image, so far-away pixels shift the aggregated costs a little
        // and with them the sub-pixel parabola: compare within a quarter pixel.
        let close = a.disparity.iter().zip(&b.disparity).filter(|(x, y)| (*x - *y).abs() <= 0.25 || (x.is_nan() && y.is_nan())).count();
        let share = close as f64 / a.disparity.len() as f64;
        assert!(share > 0.99, "{name}: only {:.2} % of the pixels agree within 0.25 px", 100.0 * share);
        let (ea, eb) = (
            evaluate(&a.disparity, &scene.gt, &valid, Some(&nonocc)).unwrap(),
            evaluate(&b.disparity, &scene.gt, &valid, Some(&nonocc)).unwrap(),
        );
        assert!((ea.nonocc.bad_2 - eb.nonocc.bad_2).abs() < 0.5, "{name}: bad-2 {:.2} vs {:.2}", ea.nonocc.bad_2, eb.nonocc.bad_2);
    }
}
