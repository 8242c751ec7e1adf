import ShoalProto

/// A metric point as the tests log it.
func metric(_ key: String, _ value: Double, step: Int64, at time: Int64 = 1000) -> TrackingV1.Metric {
  var metric = TrackingV1.Metric()
  metric.key = key
  metric.value = value
  metric.step = step
  metric.timestampMs = time
  return metric
}

/// A param as the tests log it.
func param(_ key: String, _ value: String) -> TrackingV1.Param {
  var param = TrackingV1.Param()
  param.key = key
  param.value = value
  return param
}
