//! End-to-end matching on synthetic pairs with known disparity.

use crate::common::{config, planar_scene, Texture};
use deepsim::eval::{evaluate, nonocc_from_gt};
use deepsim::pipeline::{run, LrCheckMode, NoProgress, Pair, Regularizer};
use deepsim::similarity::{Census, Ncc, Similarity};
use ndarray::Array2;

fn match_pair(pair: &Pair, similarity: &dyn Similarity, cfg: &deepsim::pipeline::MatchConfig) -> Array2<f32> {
    run(pair, cfg, &[similarity], &NoProgress).unwrap().disparity
}

/// Pixels at least `margin` away from the image border.
fn interior(dim: (usize, usize), margin: usize) -> Array2<bool> {
    Array2::from_shape_fn(dim, |(y, x)| y >= margin && x >= margin && y + margin < dim.0 && x + margin < dim.1)
}

#[test]
fn piecewise_planar_disparity_is_recovered_within_half_a_pixel() {
    let scene = planar_scene(3, 240, 160);
    let valid = Array2::from_elem(scene.gt.dim(), true);
    let nonocc = nonocc_from_gt(&scene.gt, &valid, 240);
    let mask = ndarray::Zip::from(&nonocc).and(&interior(scene.gt.dim(), 8)).map_collect(|&a, &b| a && b);
    let census = Census::new(7, 7).unwrap();
    let ncc = Ncc::new(7).unwrap();
    for (levels, similarity) in [(1, &census as &dyn Similarity), (3, &census), (2, &ncc)] {
        let disparity = match_pair(&scene.pair, similarity, &config(0, 40, levels));
        let e = evaluate(&disparity, &scene.gt, &valid, Some(&mask)).unwrap();
        assert!(
            e.nonocc.bad_0_5 < 5.0 && e.nonocc.epe < 0.5,
            "{} with {levels} level(s): bad-0.5 {:.2} %, EPE {:.3} px",
            similarity.name(),
            e.nonocc.bad_0_5,
            e.nonocc.epe
        );
    }
}

#[test]
fn identical_images_give_zero_disparity() {
    let texture = Texture::new(5, 200, 120);
    let image = Array2::from_shape_fn((120, 200), |(y, x)| texture.at(x as f32, y));
    let pair = Pair {
        left: image.clone(),
        right: image,
        left_valid: Array2::from_elem((120, 200), true),
        right_valid: Array2::from_elem((120, 200), true),
    };
    let census = Census::new(7, 7).unwrap();
    for (levels, subpixel) in [(1, false), (3, false), (1, true)] {
        let mut cfg = config(-16, 16, levels);
        cfg.subpixel = subpixel;
        let disparity = match_pair(&pair, &census, &cfg);
        let valid = disparity.iter().filter(|d| d.is_finite()).count();
        assert!(valid as f64 > 0.99 * disparity.len() as f64, "density {valid}/{}", disparity.len());
        let worst = disparity.iter().filter(|d| d.is_finite()).fold(0f32, |m, d| m.max(d.abs()));
        // Integer disparities are exactly 0; the parabola may shift them, never past 0.25 px.
        let bound = if subpixel { 0.25 } else { 0.0 };
        assert!(worst <= bound, "{levels} level(s), sub-pixel {subpixel}: largest |d| = {worst}");
    }
}

#[test]
fn left_right_check_marks_occlusions() {
    for mode in [LrCheckMode::Fast, LrCheckMode::Accurate] {
        for levels in [1, 3] {
            check_occlusions(mode, levels);
        }
    }
}

/// The check in `mode` rejects most of a scene's really occluded pixels and keeps its matched ones.
fn check_occlusions(mode: LrCheckMode, levels: u32) {
    let scene = planar_scene(9, 240, 160);
    let valid = Array2::from_elem(scene.gt.dim(), true);
    let nonocc = nonocc_from_gt(&scene.gt, &valid, 240);
    let census = Census::new(7, 7).unwrap();
    let mut cfg = config(0, 40, levels);
    cfg.median = false;
    cfg.min_region_px = 0;
    cfg.lr_check_mode = mode;
    let disparity = match_pair(&scene.pair, &census, &cfg);
    let inner = interior(scene.gt.dim(), 8);
    let (mut occluded, mut occluded_rejected, mut visible, mut visible_rejected) = (0, 0, 0, 0);
    for ((&d, &vis), &inside) in disparity.iter().zip(&nonocc).zip(&inner) {
        if !inside {
            continue;
        }
        if vis {
            visible += 1;
            visible_rejected += usize::from(!d.is_finite());
        } else {
            occluded += 1;
            occluded_rejected += usize::from(!d.is_finite());
        }
    }
    assert!(occluded > 500, "the scene has an occluded band ({occluded} px)");
    assert!(
        occluded_rejected as f64 > 0.6 * occluded as f64,
        "{mode:?}, {levels} level(s): only {occluded_rejected} of {occluded} occluded pixels were rejected"
    );
    assert!(
        (visible_rejected as f64) < 0.03 * visible as f64,
        "{mode:?}, {levels} level(s): {visible_rejected} of {visible} visible pixels were rejected"
    );
    cfg.lr_check_px = None;
    let unchecked = match_pair(&scene.pair, &census, &cfg);
    assert!(unchecked.iter().all(|d| d.is_finite()), "without the check every pixel has a value");
}

#[test]
fn invalid_left_pixels_get_no_value_and_masked_right_pixels_are_not_matched() {
    let mut scene = planar_scene(4, 160, 100);
    for y in 40..60 {
        for x in 50..70 {
            scene.pair.left_valid[(y, x)] = false;
        }
    }
    let census = Census::new(7, 7).unwrap();
    let disparity = match_pair(&scene.pair, &census, &config(0, 40, 1));
    for y in 40..60 {
        for x in 50..70 {
            assert!(disparity[(y, x)].is_nan(), "masked pixel ({x}, {y}) has a value");
        }
    }
}

#[test]
fn pyramid_keeps_the_full_range_out_of_the_full_resolution_volume() {
    let scene = planar_scene(2, 256, 128);
    let census = Census::new(7, 7).unwrap();
    let single = run(&scene.pair, &config(0, 63, 1), &[&census as &dyn Similarity], &NoProgress).unwrap();
    let multi = run(&scene.pair, &config(0, 63, 3), &[&census as &dyn Similarity], &NoProgress).unwrap();
    let full_single = single.reports.last().unwrap().cost_volume_entries;
    let full_multi = multi.reports.last().unwrap().cost_volume_entries;
    assert_eq!(full_single, 256 * 128 * 64);
    assert!(full_multi * 2 < full_single, "{full_multi} entries with the pyramid vs {full_single} without");
    assert_eq!(multi.reports.len(), 3);
    assert_eq!(multi.reports[0].level, 2, "coarsest level first");
}

#[test]
fn bad_configurations_are_rejected_with_their_reason() {
    let scene = planar_scene(1, 64, 48);
    let census = Census::new(5, 5).unwrap();
    let mut shorter = scene.pair.clone();
    shorter.right = Array2::zeros((40, 64));
    shorter.right_valid = Array2::from_elem((40, 64), true);
    let mut no_valid = scene.pair.clone();
    no_valid.left_valid.fill(false);
    let mut empty = scene.pair.clone();
    empty.left = Array2::zeros((0, 0));
    empty.left_valid = Array2::from_elem((0, 0), true);
    let mut bad_mask = scene.pair.clone();
    bad_mask.right_valid = Array2::from_elem((48, 10), true);
    let cases: Vec<(Pair, deepsim::pipeline::MatchConfig, &str)> = vec![
        (shorter, config(0, 10, 1), "different heights"),
        (no_valid, config(0, 10, 1), "no valid pixel"),
        (empty, config(0, 10, 1), "empty image"),
        (bad_mask, config(0, 10, 1), "mask sizes"),
        (scene.pair.clone(), config(0, 200, 1), "narrower than the image"),
        (scene.pair.clone(), config(10, 0, 1), "is empty"),
        (scene.pair.clone(), config(0, 10, 9), "pyramid levels"),
    ];
    for (pair, cfg, expected) in cases {
        let err = run(&pair, &cfg, &[&census as &dyn Similarity], &NoProgress).unwrap_err();
        assert!(err.to_string().contains(expected), "expected '{expected}', got: {err}");
    }
}

/// Without regularisation the right volume's winner is the best raw cost along the left
/// volume's diagonal, which is what the fast check reads: both modes give the same result, with
/// one level and with the intervals of a pyramid (where the right intervals are built).
#[test]
fn without_regularisation_the_accurate_check_is_the_fast_check() {
    let scene = planar_scene(13, 200, 120);
    let census = Census::new(5, 5).unwrap();
    for levels in [1, 3] {
        let mut cfg = config(0, 40, levels);
        for step in &mut cfg.steps {
            step.regularizer = Regularizer::None;
        }
        let fast = match_pair(&scene.pair, &census, &cfg);
        cfg.lr_check_mode = LrCheckMode::Accurate;
        let accurate = match_pair(&scene.pair, &census, &cfg);
        let rejected = fast.iter().filter(|d| d.is_nan()).count();
        assert!(rejected > 100, "{levels} level(s): the raw winner has rejections to compare ({rejected})");
        let same = fast.iter().zip(&accurate).all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
        assert!(same, "{levels} level(s): the two modes differ without regularisation");
    }
}

