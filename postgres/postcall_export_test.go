package postgres

// PointStatement is a store statement that updates or reads one call's or
// delivery's owed work, with arguments built from a call ID.
type PointStatement struct {
	Name, SQL string
	Args      func(callID string) []any
}

// PointStatements are the statements TestPointStatementsDoNotWalkOwedIndexes plans.
var PointStatements = []PointStatement{
	{"SetRoomStatus", setRoomStatusSQL, func(id string) []any { return []any{id, "deleted"} }},
	{"FinishHangup", finishHangupSQL, func(id string) []any { return []any{id, "succeeded"} }},
	{"FailDelivery", failDeliverySQL, func(id string) []any { return []any{"msg_" + id} }},
	{"pending call.analyzed", pendingAnalyzedSQL, func(id string) []any { return []any{id} }},
	{"CompleteAnalysis", completeAnalysisSQL, func(id string) []any { return []any{id, "completed", nil, nil, nil, 1} }},
}
