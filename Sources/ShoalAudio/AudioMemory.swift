import CSndfile

/// How the process's allocator treats the buffers of audio work.
public enum AudioMemory {
  /// Keeps freed buffers of up to 64 MiB in the heap for reuse instead of handing them back to
  /// the kernel: every clip allocates a few buffers of half a megabyte (its samples, its
  /// resampled copy), and with glibc's defaults each came back as fresh pages to fault in and
  /// clear. For processes that turn many clips into spectrograms; measured +25 % clips/s.
  public static func keepLargeBuffers() {
    _ = mallopt(M_MMAP_THRESHOLD, 64 << 20)
    _ = mallopt(M_TRIM_THRESHOLD, 256 << 20)
  }
}
