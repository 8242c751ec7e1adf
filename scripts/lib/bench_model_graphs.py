"""ResNet-50-, SqueezeNet-1.1-, MobileNet-v2- and VGG-16-shaped ONNX graphs with random weights,
built with the onnx package's helper API for scripts/bench-model and scripts/bench-inference.
Usage: bench_model_graphs.py DIR [NAME…]   (default: all four, the inputs and the sgemm graph)"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)


class Graph:
    def __init__(self, name):
        self.name, self.nodes, self.inits, self.count = name, [], [], 0

    def fresh(self, kind):
        self.count += 1
        return f"{kind}{self.count}"

    def weight(self, shape, fan_in):
        name = self.fresh("w")
        self.inits.append(numpy_helper.from_array((rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32), name))
        return name

    def constant(self, array):
        name = self.fresh("c")
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, **attributes):
        out = self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attributes))
        return out

    def conv(self, x, cin, cout, k, stride=1, pad=None, group=1, bn=True, act="relu"):
        pad = k // 2 if pad is None else pad
        w = self.weight((cout, cin // group, k, k), cin // group * k * k)
        inputs = [x, w] if bn else [x, w, self.constant(np.zeros(cout, np.float32))]
        y = self.node("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=group)
        if bn:
            params = [self.constant((1 + 0.1 * rng.standard_normal(cout)).astype(np.float32)),
                      self.constant((0.1 * rng.standard_normal(cout)).astype(np.float32)),
                      self.constant((0.1 * rng.standard_normal(cout)).astype(np.float32)),
                      self.constant((1 + 0.1 * rng.random(cout)).astype(np.float32))]
            y = self.node("BatchNormalization", [y] + params, epsilon=1e-5)
        if act == "relu":
            y = self.node("Relu", [y])
        elif act == "relu6":
            y = self.node("Clip", [y, self.constant(np.float32(0)), self.constant(np.float32(6))])
        return y

    def fc(self, x, cin, cout):
        return self.node("Gemm", [x, self.weight((cout, cin), cin), self.constant(np.zeros(cout, np.float32))], transB=1)

    def head(self, x, channels, classes=1000):
        x = self.node("Flatten", [self.node("GlobalAveragePool", [x])], axis=1)
        return self.fc(x, channels, classes)

    def save(self, output, path, classes=1000):
        graph = helper.make_graph(
            self.nodes, self.name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", classes])], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="bench-model")
        model.ir_version = 8
        onnx.save(model, path)


def resnet50():
    g = Graph("resnet50")
    x = g.conv("input", 3, 64, 7, stride=2)
    x = g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for block in range(blocks):
            s = stride if block == 0 else 1
            y = g.conv(x, cin, width, 1, pad=0)
            y = g.conv(y, width, width, 3, stride=s)
            y = g.conv(y, width, width * 4, 1, pad=0, act=None)
            shortcut = g.conv(x, cin, width * 4, 1, stride=s, pad=0, act=None) if block == 0 else x
            x = g.node("Relu", [g.node("Add", [y, shortcut])])
            cin = width * 4
    return g, g.head(x, 2048)


def squeezenet():
    g = Graph("squeezenet1.1")
    x = g.conv("input", 3, 64, 3, stride=2, pad=0, bn=False)
    pool = dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    x = g.node("MaxPool", [x], **pool)
    cin = 64
    for index, (squeeze, expand) in enumerate([(16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192), (64, 256), (64, 256)]):
        s = g.conv(x, cin, squeeze, 1, pad=0, bn=False)
        x = g.node("Concat", [g.conv(s, squeeze, expand, 1, pad=0, bn=False), g.conv(s, squeeze, expand, 3, bn=False)], axis=1)
        cin = 2 * expand
        if index in (1, 3):
            x = g.node("MaxPool", [x], **pool)
    x = g.conv(x, cin, 1000, 1, pad=0, bn=False)
    return g, g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)


def mobilenetv2(classes=1000):
    g = Graph("mobilenetv2")
    x = g.conv("input", 3, 32, 3, stride=2, act="relu6")
    cin = 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = g.conv(x, cin, hidden, 1, pad=0, act="relu6") if t != 1 else x
            y = g.conv(y, hidden, hidden, 3, stride=stride, group=hidden, act="relu6")
            y = g.conv(y, hidden, c, 1, pad=0, act=None)
            x = g.node("Add", [x, y]) if stride == 1 and cin == c else y
            cin = c
    x = g.conv(x, cin, 1280, 1, pad=0, act="relu6")
    return g, g.head(x, 1280, classes)


def vgg16():
    g = Graph("vgg16")
    x, cin = "input", 3
    for item in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if item == "M":
            x = g.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        else:
            x, cin = g.conv(x, cin, item, 3, bn=False), item
    x = g.node("Flatten", [x], axis=1)
    x = g.node("Relu", [g.fc(x, 512 * 7 * 7, 4096)])
    x = g.node("Relu", [g.fc(x, 4096, 4096)])
    return g, g.fc(x, 4096, 1000)


if __name__ == "__main__":
    directory = sys.argv[1]
    chosen = set(sys.argv[2:])
    for name, build in [("resnet50", resnet50), ("squeezenet", squeezenet), ("mobilenetv2", mobilenetv2), ("vgg16", vgg16)]:
        if chosen and name not in chosen:
            continue
        graph, output = build()
        graph.save(output, f"{directory}/{name}.onnx")
    if chosen:
        sys.exit(0)
    for batch in (1, 8):
        np.save(f"{directory}/input{batch}.npy", rng.random((batch, 3, 224, 224), dtype=np.float32))
    n = 2048
    matmul = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "sgemm", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(rng.random((n, n), dtype=np.float32), "b")])
    onnx.save(helper.make_model(matmul, opset_imports=[helper.make_opsetid("", 13)]), f"{directory}/sgemm.onnx")
    np.save(f"{directory}/a.npy", rng.random((n, n), dtype=np.float32))
