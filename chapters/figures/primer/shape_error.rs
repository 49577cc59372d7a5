// Does not compile, on purpose: `.ci/shape-error` compiles it and checks that
// the compiler's message is still the one the book quotes (shape_error.txt).
use dfdx::prelude::*;

fn main() {
    let dev = Cpu::default();
    let x: Tensor<(usize, Const<32>), f32, Cpu> = dev.zeros_like(&(4, Const)); // (N, 32)
    let w: Tensor<Rank2<16, 8>, f32, Cpu> = dev.zeros(); // (16, 8)
    let y = x.matmul(w); // (N, 32) @ (16, 8): 32 is not 16
    println!("{:?}", y.shape());
}
