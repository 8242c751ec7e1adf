public import Foundation

/// What `shoal up` says of its children in its state file (`DATA/up.json`).
public enum MeshState {
  /// Each child's pid by service name (services without a running child are left out).
  public static func childPIDs(_ dataDirectory: String) -> [String: Int32] {
    guard let bytes = FileManager.default.contents(atPath: "\(dataDirectory)/up.json"),
      let object = try? JSONSerialization.jsonObject(with: bytes) as? [String: Any],
      let services = object["services"] as? [[String: Any]]
    else { return [:] }
    var pids: [String: Int32] = [:]
    for service in services {
      if let name = service["name"] as? String, let pid = service["pid"] as? Int { pids[name] = Int32(pid) }
    }
    return pids
  }
}
