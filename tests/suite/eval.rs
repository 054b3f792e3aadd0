//! Metrics on hand-made maps.

use deepsim::eval::{evaluate, nonocc_from_gt};
use ndarray::{array, Array2};

#[test]
fn bad_pixel_rates_count_missing_predictions_as_bad() {
    let gt = array![[10.0f32, 10.0, 10.0, 10.0]];
    let disparity = array![[10.2f32, 11.5, f32::NAN, 13.0]];
    let valid = Array2::from_elem((1, 4), true);
    let all = Array2::from_elem((1, 4), true);
    let e = evaluate(&disparity, &gt, &valid, Some(&all)).unwrap();
    assert_eq!(e.all.pixels, 4);
    assert_eq!(e.all.bad_0_5, 75.0); // 1.5, NaN, 3.0
    assert_eq!(e.all.bad_1, 75.0);
    assert_eq!(e.all.bad_2, 50.0); // NaN, 3.0
    assert_eq!(e.all.bad_4, 25.0); // NaN only
    assert!((e.all.epe - (0.2 + 1.5 + 3.0) / 3.0).abs() < 1e-5);
    assert_eq!(e.all.density, 75.0);
}

#[test]
fn unknown_ground_truth_is_skipped_and_mask_restricts_nonocc() {
    let gt = array![[5.0f32, f32::NAN, 5.0]];
    let valid = gt.mapv(f32::is_finite);
    let disparity = array![[5.0f32, 0.0, 9.0]];
    let mask = array![[true, true, false]];
    let e = evaluate(&disparity, &gt, &valid, Some(&mask)).unwrap();
    assert_eq!(e.all.pixels, 2);
    assert_eq!(e.nonocc.pixels, 1);
    assert_eq!(e.nonocc.bad_2, 0.0);
    assert_eq!(e.all.bad_2, 50.0);
}

#[test]
fn forward_warping_finds_the_band_hidden_by_a_foreground_step() {
    // Background d = 2 on the left, foreground d = 6 from x = 10: right pixels 4..8 are covered
    // by the foreground (x = 10..13 land there), so background pixels x = 6..9 (landing on 4..7)
    // are occluded; the first two columns land outside the right image.
    let gt = Array2::from_shape_fn((1, 20), |(_, x)| if x >= 10 { 6.0f32 } else { 2.0 });
    let valid = Array2::from_elem((1, 20), true);
    let nonocc = nonocc_from_gt(&gt, &valid, 20);
    let hidden: Vec<usize> = (0..20).filter(|&x| !nonocc[(0, x)]).collect();
    assert_eq!(hidden, vec![0, 1, 6, 7, 8, 9]);
}

#[test]
fn size_mismatch_is_an_error() {
    let err = evaluate(&Array2::zeros((2, 3)), &Array2::zeros((3, 2)), &Array2::from_elem((3, 2), true), None).unwrap_err();
    assert!(err.to_string().contains("ground truth"));
}
