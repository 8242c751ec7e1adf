public import NIOCore

/// Runs tasks on a connection's event loop, so that a handler and the channel it answers on
/// share a thread and a call does not cross cores twice.
public final class EventLoopTaskExecutor: TaskExecutor {
  /// The event loop jobs run on.
  public let eventLoop: any EventLoop

  /// An executor for `eventLoop`.
  public init(_ eventLoop: any EventLoop) {
    self.eventLoop = eventLoop
  }

  public func enqueue(_ job: consuming ExecutorJob) {
    let job = UnownedJob(job)
    eventLoop.execute {
      job.runSynchronously(on: self.asUnownedTaskExecutor())
    }
  }
}
