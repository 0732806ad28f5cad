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
    use torchlight_cli::Device;
    use torchlight_engine::runtime::parse_device;
    assert_eq!("cuda:3".parse::<Device>(), Ok(Device::Cuda(3)));
    assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
    assert!("gpu".parse::<Device>().is_err());
    assert!("cuda:x".parse::<Device>().is_err());
    assert_eq!(parse_device("cpu".parse().unwrap()).unwrap(), tch::Device::Cpu);
    let count = tch::Cuda::device_count() as usize;
    let err = parse_device(Device::Cuda(count)).unwrap_err().to_string();
    assert!(err.contains(&format!("sees {count} CUDA device(s)")) && err.contains("--cuda"), "{err}");
}
