"""An independent protobuf implementation for Shoal's compatibility tests.

Uses Google's `protobuf` package (and `onnx`) to check that bytes and JSON written by Shoal's
generated code are read the same way by the reference implementation, and the reverse.

  proto_peer.py encode DESCRIPTOR_SET TYPE   JSON on stdin  -> binary (deterministic) on stdout
  proto_peer.py decode DESCRIPTOR_SET TYPE   binary on stdin -> JSON on stdout
  proto_peer.py onnx-data                    prints the onnx package's backend test data directory
  proto_peer.py onnx-summary FILE...         one line per model: FILE<TAB>summary JSON
"""
import json
import os
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory


def message_class(descriptor_set_path, type_name):
    files = descriptor_pb2.FileDescriptorSet()
    with open(descriptor_set_path, "rb") as f:
        files.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(type_name))


def encode(descriptor_set_path, type_name):
    message = message_class(descriptor_set_path, type_name)()
    json_format.Parse(sys.stdin.read(), message)
    sys.stdout.buffer.write(message.SerializeToString(deterministic=True))


def decode(descriptor_set_path, type_name):
    message = message_class(descriptor_set_path, type_name)()
    message.ParseFromString(sys.stdin.buffer.read())
    sys.stdout.write(json_format.MessageToJson(message))


def value_info(v):
    dims = None
    if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape"):
        dims = []
        for d in v.type.tensor_type.shape.dim:
            which = d.WhichOneof("value")
            dims.append(d.dim_value if which == "dim_value" else d.dim_param if which == "dim_param" else None)
    return [v.name, v.type.tensor_type.elem_type, dims]


def float_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def attribute(a):
    return [a.name, a.type, a.i, float_bits(a.f), a.s.hex(), list(a.ints), [float_bits(x) for x in a.floats],
            list(a.t.dims), a.t.data_type, len(a.t.raw_data), len(a.g.node)]


def summary(model):
    g = model.graph
    return {
        "ir": model.ir_version,
        "producer": model.producer_name,
        "opsets": [[o.domain, o.version] for o in model.opset_import],
        "inputs": [value_info(v) for v in g.input],
        "outputs": [value_info(v) for v in g.output],
        "nodes": [[n.op_type, n.domain, list(n.input), list(n.output), [attribute(a) for a in n.attribute]] for n in g.node],
        "initializers": [[t.name, t.data_type, list(t.dims), len(t.raw_data), len(t.float_data), len(t.int64_data),
                          len(t.int32_data)] for t in g.initializer],
    }


def onnx_summary(paths):
    import onnx
    for path in paths:
        with open(path, "rb") as f:
            model = onnx.ModelProto.FromString(f.read())
        print(path + "\t" + json.dumps(summary(model), separators=(",", ":")))


def onnx_data():
    import onnx
    print(os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data"))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "encode":
        encode(sys.argv[2], sys.argv[3])
    elif command == "decode":
        decode(sys.argv[2], sys.argv[3])
    elif command == "onnx-data":
        onnx_data()
    elif command == "onnx-summary":
        onnx_summary(sys.argv[2:])
    else:
        sys.exit("unknown command " + command)
