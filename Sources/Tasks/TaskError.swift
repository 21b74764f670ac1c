// TaskError: every way a task definition or its data can be wrong, each naming the file (and line, or
// field) so the user can fix it. Nothing in the Tasks target traps on bad input.

public struct TaskError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}
