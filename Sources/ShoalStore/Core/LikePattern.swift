/// LIKE patterns built from user text, for `LIKE $1 ESCAPE '\\'` on both back ends.
public enum LikePattern {
  /// `text` with LIKE's wildcards (`%`, `_`) and the escape character escaped, so it matches
  /// itself only.
  public static func escaped(_ text: String) -> String {
    var escaped = ""
    for character in text {
      if character == "%" || character == "_" || character == "\\" { escaped.append("\\") }
      escaped.append(character)
    }
    return escaped
  }
}
