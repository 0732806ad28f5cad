pub mod bin;
pub mod fixtures;

/// The mean of each RGB channel of an image: the test models' cheap, deterministic input.
pub fn channel_means(img: &image::DynamicImage) -> [f32; 3] {
    let rgb = img.to_rgb8();
    let n = (rgb.width() * rgb.height()) as f32;
    let mut sums = [0f32; 3];
    for p in rgb.pixels() {
        for c in 0..3 {
            sums[c] += f32::from(p[c]);
        }
    }
    sums.map(|s| s / n)
}
