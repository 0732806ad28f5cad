//! libtorch links, runs on CPU and agrees with plain arithmetic.

#[test]
fn matmul_on_cpu() {
    torchlight_engine::runtime::init();
    let a = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).reshape([2, 2]);
    let b = a.matmul(&a.transpose(0, 1));
    let v: Vec<f32> = b.flatten(0, -1).try_into().unwrap();
    assert_eq!(v, vec![5.0, 11.0, 11.0, 25.0]);
}

#[test]
fn device_parsing() {
    assert_eq!(torchlight_engine::runtime::parse_device("cpu").unwrap(), tch::Device::Cpu);
    assert!(torchlight_engine::runtime::parse_device("gpu").is_err());
    if tch::Cuda::device_count() == 0 {
        let err = torchlight_engine::runtime::parse_device("cuda:0").unwrap_err();
        assert!(err.contains("--cuda"), "{err}");
    }
}
