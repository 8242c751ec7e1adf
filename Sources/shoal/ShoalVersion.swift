/// The version `shoal --version` prints.
enum ShoalVersion {
  static let current = "0.1.0"
}
