//! A small convolutional net for image data: conv (same padding) + activation + 2x2 max
//! pool per layer while the image allows, then a hidden linear layer and a linear head.

use super::{Activation, Net};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;

#[derive(Module, Debug)]
pub struct Cnn {
    pub convs: Vec<Conv2d>,
    pub pool: MaxPool2d,
    pub fc: Linear,
    pub head: Linear,
    #[module(skip)]
    pub act: Activation,
    #[module(skip)]
    pub input: [usize; 3],
    #[module(skip)]
    pub pooled: Vec<bool>,
}

impl Cnn {
    pub fn new(
        input: [usize; 3],
        channels: &[usize],
        kernel: usize,
        hidden: usize,
        outputs: usize,
        act: Activation,
        device: &Device,
    ) -> Cnn {
        let (mut c, mut h, mut w) = (input[0], input[1], input[2]);
        let mut convs = vec![];
        let mut pooled = vec![];
        for &out in channels {
            convs.push(
                Conv2dConfig::new([c, out], [kernel, kernel])
                    .with_padding(PaddingConfig2d::Same)
                    .init(device),
            );
            c = out;
            let pool = h >= 4 && w >= 4;
            if pool {
                h /= 2;
                w /= 2;
            }
            pooled.push(pool);
        }
        Cnn {
            convs,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc: LinearConfig::new(c * h * w, hidden).init(device),
            head: LinearConfig::new(hidden, outputs).init(device),
            act,
            input,
            pooled,
        }
    }
}

impl Net for Cnn {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [b, _] = x.dims();
        let [c, h, w] = self.input;
        let mut t = x.reshape([b, c, h, w]);
        for (conv, &pool) in self.convs.iter().zip(&self.pooled) {
            t = self.act.apply(conv.forward(t));
            if pool {
                t = self.pool.forward(t);
            }
        }
        let flat: Tensor<2> = t.flatten(1, 3);
        self.head.forward(self.act.apply(self.fc.forward(flat)))
    }

    /// `convs.i`: conv block `i` after its activation and pooling, flattened; `fc`: the
    /// hidden linear layer after its activation.
    fn hidden(&self, x: Tensor<2>) -> Vec<(String, Tensor<2>)> {
        let [b, _] = x.dims();
        let [c, h, w] = self.input;
        let mut t = x.reshape([b, c, h, w]);
        let mut out = vec![];
        for (i, (conv, &pool)) in self.convs.iter().zip(&self.pooled).enumerate() {
            t = self.act.apply(conv.forward(t));
            if pool {
                t = self.pool.forward(t);
            }
            out.push((format!("convs.{i}"), t.clone().flatten(1, 3)));
        }
        let flat: Tensor<2> = t.flatten(1, 3);
        out.push(("fc".into(), self.act.apply(self.fc.forward(flat))));
        out
    }
}
