"""deepinside.filters: the one Gaussian blur on tensors, against OpenCV's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from deepinside.filters import WIDE, blur_each, gaussian_blur


@pytest.mark.parametrize("sigma", [0.7, 2.0, 6.0])  # 6.0: 37 taps, the matrix products
def test_gaussian_blur_equals_opencvs_with_the_same_kernel_and_reflect_padding(sigma):
    x = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r = max(1, int(3.0 * sigma + 0.5))
    assert (2 * r + 1 >= WIDE) == (sigma == 6.0)
    ours = gaussian_blur(x, sigma)
    for b in range(2):
        img = x[b].permute(1, 2, 0).numpy()
        ref = cv2.GaussianBlur(img, (2 * r + 1, 2 * r + 1), sigma, sigmaY=sigma,
                               borderType=cv2.BORDER_REFLECT_101)  # torch's "reflect"
        np.testing.assert_allclose(ours[b].permute(1, 2, 0).numpy(), ref, atol=1e-6)


def test_zero_sigma_is_a_copy_a_constant_is_unchanged_and_it_is_differentiable():
    x = torch.rand(1, 2, 6, 6, requires_grad=True)
    y = gaussian_blur(x, 0.0)
    assert torch.equal(y, x) and y is not x
    c = torch.full((1, 3, 5, 9), 0.25)
    torch.testing.assert_close(gaussian_blur(c, 5.0), c)  # radius clipped to the side, sum 1
    gaussian_blur(x, 1.0).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    wide = torch.rand(1, 2, 40, 40, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda v: gaussian_blur(v, 6.0), (wide,))  # the matrix products


def test_blur_each_is_the_gaussian_blur_of_each_image_with_its_own_sigma():
    x = torch.rand(3, 2, 24, 24, generator=torch.Generator().manual_seed(0))
    y = blur_each(x, torch.tensor([0.0, 0.8, 1.6]))
    torch.testing.assert_close(y[0], x[0])  # sigma 0: unchanged
    for i, s in ((1, 0.8), (2, 1.6)):  # away from the border (padding differs); one kernel
        # radius for the batch (3 x the largest sigma), so sigma 0.8 is truncated less: 1e-3
        want = gaussian_blur(x[i:i + 1], s)[0]
        torch.testing.assert_close(y[i, :, 6:-6, 6:-6], want[:, 6:-6, 6:-6], atol=1e-3, rtol=0)
