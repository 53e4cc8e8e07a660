package sqlparse

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// statementKind names the statement m: its leading keyword and the object
// type it acts on. Both are "" when m is not a statement.
func statementKind(m proto.Message) (kind, object string) {
	switch n := m.(type) {
	// Queries and data changes.
	case *pg_query.SelectStmt:
		if n.GetIntoClause() != nil {
			return "CREATE", "TABLE" // SELECT ... INTO creates the table
		}
		return "SELECT", ""
	case *pg_query.InsertStmt:
		return "INSERT", ""
	case *pg_query.UpdateStmt:
		return "UPDATE", ""
	case *pg_query.DeleteStmt:
		return "DELETE", ""
	case *pg_query.MergeStmt:
		return "MERGE", ""
	case *pg_query.CopyStmt:
		return "COPY", ""
	case *pg_query.TruncateStmt:
		return "TRUNCATE", ""
	case *pg_query.LockStmt:
		return "LOCK", ""
	case *pg_query.CallStmt:
		return "CALL", ""
	case *pg_query.DoStmt:
		return "DO", ""

	// Prepared statements and cursors.
	case *pg_query.PrepareStmt:
		return "PREPARE", ""
	case *pg_query.ExecuteStmt:
		return "EXECUTE", ""
	case *pg_query.DeallocateStmt:
		return "DEALLOCATE", ""
	case *pg_query.ExplainStmt:
		return "EXPLAIN", ""
	case *pg_query.DeclareCursorStmt:
		return "DECLARE", ""
	case *pg_query.FetchStmt:
		if n.GetIsmove() {
			return "MOVE", ""
		}
		return "FETCH", ""
	case *pg_query.ClosePortalStmt:
		return "CLOSE", ""

	// Transactions and session state.
	case *pg_query.TransactionStmt:
		return transactionKind(n.GetKind())
	case *pg_query.VariableSetStmt:
		switch n.GetKind() {
		case pg_query.VariableSetKind_VAR_RESET, pg_query.VariableSetKind_VAR_RESET_ALL:
			return "RESET", ""
		}
		return "SET", ""
	case *pg_query.VariableShowStmt:
		return "SHOW", ""
	case *pg_query.ConstraintsSetStmt:
		return "SET", "CONSTRAINTS"
	case *pg_query.DiscardStmt:
		return "DISCARD", ""
	case *pg_query.ListenStmt:
		return "LISTEN", ""
	case *pg_query.NotifyStmt:
		return "NOTIFY", ""
	case *pg_query.UnlistenStmt:
		return "UNLISTEN", ""
	case *pg_query.LoadStmt:
		return "LOAD", ""

	// Maintenance.
	case *pg_query.VacuumStmt:
		if n.GetIsVacuumcmd() {
			return "VACUUM", ""
		}
		return "ANALYZE", ""
	case *pg_query.ClusterStmt:
		return "CLUSTER", ""
	case *pg_query.ReindexStmt:
		return "REINDEX", reindexObject(n.GetKind())
	case *pg_query.CheckPointStmt:
		return "CHECKPOINT", ""
	case *pg_query.RefreshMatViewStmt:
		return "REFRESH", "MATERIALIZED VIEW"

	// Privileges and ownership.
	case *pg_query.GrantStmt:
		return grantKind(n.GetIsGrant()), objectName(n.GetObjtype())
	case *pg_query.GrantRoleStmt:
		return grantKind(n.GetIsGrant()), "ROLE"
	case *pg_query.AlterDefaultPrivilegesStmt:
		return "ALTER", "DEFAULT PRIVILEGES"
	case *pg_query.DropOwnedStmt:
		return "DROP", "OWNED"
	case *pg_query.ReassignOwnedStmt:
		return "REASSIGN", "OWNED"
	case *pg_query.CommentStmt:
		return "COMMENT", objectName(n.GetObjtype())
	case *pg_query.SecLabelStmt:
		return "SECURITY LABEL", objectName(n.GetObjtype())

	// CREATE.
	case *pg_query.CreateStmt:
		return "CREATE", "TABLE"
	case *pg_query.CreateTableAsStmt:
		return "CREATE", objectName(n.GetObjtype())
	case *pg_query.ViewStmt:
		return "CREATE", "VIEW"
	case *pg_query.IndexStmt:
		return "CREATE", "INDEX"
	case *pg_query.CreateFunctionStmt:
		if n.GetIsProcedure() {
			return "CREATE", "PROCEDURE"
		}
		return "CREATE", "FUNCTION"
	case *pg_query.CreateRoleStmt:
		return "CREATE", "ROLE"
	case *pg_query.CreateSchemaStmt:
		return "CREATE", "SCHEMA"
	case *pg_query.CreateSeqStmt:
		return "CREATE", "SEQUENCE"
	case *pg_query.CreateExtensionStmt:
		return "CREATE", "EXTENSION"
	case *pg_query.CreatedbStmt:
		return "CREATE", "DATABASE"
	case *pg_query.CreateTableSpaceStmt:
		return "CREATE", "TABLESPACE"
	case *pg_query.CreateTrigStmt:
		return "CREATE", "TRIGGER"
	case *pg_query.CreateEventTrigStmt:
		return "CREATE", "EVENT TRIGGER"
	case *pg_query.CreatePLangStmt:
		return "CREATE", "LANGUAGE"
	case *pg_query.CreateDomainStmt:
		return "CREATE", "DOMAIN"
	case *pg_query.CreateEnumStmt, *pg_query.CreateRangeStmt, *pg_query.CompositeTypeStmt:
		return "CREATE", "TYPE"
	case *pg_query.DefineStmt:
		return "CREATE", objectName(n.GetKind())
	case *pg_query.CreateCastStmt:
		return "CREATE", "CAST"
	case *pg_query.CreateConversionStmt:
		return "CREATE", "CONVERSION"
	case *pg_query.CreateTransformStmt:
		return "CREATE", "TRANSFORM"
	case *pg_query.CreateOpClassStmt:
		return "CREATE", "OPERATOR CLASS"
	case *pg_query.CreateOpFamilyStmt:
		return "CREATE", "OPERATOR FAMILY"
	case *pg_query.CreateAmStmt:
		return "CREATE", "ACCESS METHOD"
	case *pg_query.CreateFdwStmt:
		return "CREATE", "FOREIGN DATA WRAPPER"
	case *pg_query.CreateForeignServerStmt:
		return "CREATE", "SERVER"
	case *pg_query.CreateForeignTableStmt:
		return "CREATE", "FOREIGN TABLE"
	case *pg_query.CreateUserMappingStmt:
		return "CREATE", "USER MAPPING"
	case *pg_query.CreatePolicyStmt:
		return "CREATE", "POLICY"
	case *pg_query.CreatePublicationStmt:
		return "CREATE", "PUBLICATION"
	case *pg_query.CreateSubscriptionStmt:
		return "CREATE", "SUBSCRIPTION"
	case *pg_query.CreateStatsStmt:
		return "CREATE", "STATISTICS"
	case *pg_query.RuleStmt:
		return "CREATE", "RULE"
	case *pg_query.ImportForeignSchemaStmt:
		return "IMPORT", "FOREIGN SCHEMA"

	// ALTER.
	case *pg_query.AlterTableStmt:
		return "ALTER", objectName(n.GetObjtype())
	case *pg_query.AlterTableMoveAllStmt:
		return "ALTER", objectName(n.GetObjtype())
	case *pg_query.AlterTableSpaceOptionsStmt:
		return "ALTER", "TABLESPACE"
	case *pg_query.AlterRoleStmt, *pg_query.AlterRoleSetStmt:
		return "ALTER", "ROLE"
	case *pg_query.AlterSeqStmt:
		return "ALTER", "SEQUENCE"
	case *pg_query.AlterExtensionStmt, *pg_query.AlterExtensionContentsStmt:
		return "ALTER", "EXTENSION"
	case *pg_query.AlterDatabaseStmt, *pg_query.AlterDatabaseSetStmt, *pg_query.AlterDatabaseRefreshCollStmt:
		return "ALTER", "DATABASE"
	case *pg_query.AlterEventTrigStmt:
		return "ALTER", "EVENT TRIGGER"
	case *pg_query.AlterDomainStmt:
		return "ALTER", "DOMAIN"
	case *pg_query.AlterEnumStmt, *pg_query.AlterTypeStmt:
		return "ALTER", "TYPE"
	case *pg_query.AlterCollationStmt:
		return "ALTER", "COLLATION"
	case *pg_query.AlterOperatorStmt:
		return "ALTER", "OPERATOR"
	case *pg_query.AlterOpFamilyStmt:
		return "ALTER", "OPERATOR FAMILY"
	case *pg_query.AlterFdwStmt:
		return "ALTER", "FOREIGN DATA WRAPPER"
	case *pg_query.AlterForeignServerStmt:
		return "ALTER", "SERVER"
	case *pg_query.AlterUserMappingStmt:
		return "ALTER", "USER MAPPING"
	case *pg_query.AlterPolicyStmt:
		return "ALTER", "POLICY"
	case *pg_query.AlterPublicationStmt:
		return "ALTER", "PUBLICATION"
	case *pg_query.AlterSubscriptionStmt:
		return "ALTER", "SUBSCRIPTION"
	case *pg_query.AlterStatsStmt:
		return "ALTER", "STATISTICS"
	case *pg_query.AlterTSDictionaryStmt:
		return "ALTER", "TEXT SEARCH DICTIONARY"
	case *pg_query.AlterTSConfigurationStmt:
		return "ALTER", "TEXT SEARCH CONFIGURATION"
	case *pg_query.AlterFunctionStmt:
		return "ALTER", objectName(n.GetObjtype())
	case *pg_query.AlterObjectDependsStmt:
		return "ALTER", objectName(n.GetObjectType())
	case *pg_query.AlterObjectSchemaStmt:
		return "ALTER", objectName(n.GetObjectType())
	case *pg_query.AlterOwnerStmt:
		return "ALTER", objectName(n.GetObjectType())
	case *pg_query.RenameStmt:
		return "ALTER", renameObject(n)
	case *pg_query.AlterSystemStmt:
		return "ALTER", "SYSTEM"

	// DROP.
	case *pg_query.DropStmt:
		return "DROP", objectName(n.GetRemoveType())
	case *pg_query.DropRoleStmt:
		return "DROP", "ROLE"
	case *pg_query.DropdbStmt:
		return "DROP", "DATABASE"
	case *pg_query.DropTableSpaceStmt:
		return "DROP", "TABLESPACE"
	case *pg_query.DropUserMappingStmt:
		return "DROP", "USER MAPPING"
	case *pg_query.DropSubscriptionStmt:
		return "DROP", "SUBSCRIPTION"
	}
	// Not statements of their own: RawStmt wraps a statement; ReplicaIdentityStmt
	// is part of ALTER TABLE; ReturnStmt is the RETURN of a SQL function body;
	// PLAssignStmt and SetOperationStmt do not occur in a raw parse tree.
	return "", ""
}

// rootKinds are the kinds a top-level statement m adds to Kinds itself.
func rootKinds(m proto.Message) []string {
	kind, _ := statementKind(m)
	if s, ok := m.(*pg_query.SelectStmt); ok && s.GetIntoClause() != nil {
		return []string{kind, "SELECT"}
	}
	if kind == "" {
		return nil
	}
	return []string{kind}
}

// recordKind adds the kind of m, a message inside a statement, to f.
func recordKind(m proto.Message, f *facts) {
	if _, ok := m.(*pg_query.VariableSetStmt); ok {
		// Inside a statement, SET is a clause of ALTER SYSTEM, ALTER ROLE,
		// ALTER DATABASE or ALTER FUNCTION, not a statement of its own.
		return
	}
	if s, ok := m.(*pg_query.SelectStmt); ok && len(s.GetValuesLists()) > 0 && s.GetIntoClause() == nil {
		// A VALUES list reads nothing; sub-queries in it are recorded
		// on their own.
		return
	}
	for _, k := range rootKinds(m) {
		f.kinds[k] = struct{}{}
	}
}

func transactionKind(k pg_query.TransactionStmtKind) (kind, object string) {
	switch k {
	case pg_query.TransactionStmtKind_TRANS_STMT_BEGIN, pg_query.TransactionStmtKind_TRANS_STMT_START:
		return "BEGIN", ""
	case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT:
		return "COMMIT", ""
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK:
		return "ROLLBACK", ""
	case pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT:
		return "SAVEPOINT", ""
	case pg_query.TransactionStmtKind_TRANS_STMT_RELEASE:
		return "RELEASE", ""
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
		return "ROLLBACK", "SAVEPOINT"
	case pg_query.TransactionStmtKind_TRANS_STMT_PREPARE:
		return "PREPARE", "TRANSACTION"
	case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED:
		return "COMMIT", "PREPARED"
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED:
		return "ROLLBACK", "PREPARED"
	}
	return "TRANSACTION", ""
}

func grantKind(isGrant bool) string {
	if isGrant {
		return "GRANT"
	}
	return "REVOKE"
}

func reindexObject(k pg_query.ReindexObjectType) string {
	switch k {
	case pg_query.ReindexObjectType_REINDEX_OBJECT_INDEX:
		return "INDEX"
	case pg_query.ReindexObjectType_REINDEX_OBJECT_TABLE:
		return "TABLE"
	case pg_query.ReindexObjectType_REINDEX_OBJECT_SCHEMA:
		return "SCHEMA"
	case pg_query.ReindexObjectType_REINDEX_OBJECT_SYSTEM:
		return "SYSTEM"
	case pg_query.ReindexObjectType_REINDEX_OBJECT_DATABASE:
		return "DATABASE"
	}
	return ""
}

// renameObject is the object type ALTER ... RENAME acts on: the relation's
// type when a column, attribute or table constraint is renamed.
func renameObject(n *pg_query.RenameStmt) string {
	switch n.GetRenameType() {
	case pg_query.ObjectType_OBJECT_COLUMN, pg_query.ObjectType_OBJECT_ATTRIBUTE, pg_query.ObjectType_OBJECT_TABCONSTRAINT:
		return objectName(n.GetRelationType())
	case pg_query.ObjectType_OBJECT_DOMCONSTRAINT:
		return "DOMAIN"
	}
	return objectName(n.GetRenameType())
}

// relationTypes are the object types a DROP removes relations of.
var relationTypes = map[pg_query.ObjectType]bool{
	pg_query.ObjectType_OBJECT_TABLE:         true,
	pg_query.ObjectType_OBJECT_VIEW:          true,
	pg_query.ObjectType_OBJECT_MATVIEW:       true,
	pg_query.ObjectType_OBJECT_INDEX:         true,
	pg_query.ObjectType_OBJECT_SEQUENCE:      true,
	pg_query.ObjectType_OBJECT_FOREIGN_TABLE: true,
}

// objectName writes an object type the way SQL does.
func objectName(t pg_query.ObjectType) string {
	switch t {
	case pg_query.ObjectType_OBJECT_ACCESS_METHOD:
		return "ACCESS METHOD"
	case pg_query.ObjectType_OBJECT_AGGREGATE:
		return "AGGREGATE"
	case pg_query.ObjectType_OBJECT_AMOP:
		return "OPERATOR CLASS MEMBER"
	case pg_query.ObjectType_OBJECT_AMPROC:
		return "OPERATOR CLASS FUNCTION"
	case pg_query.ObjectType_OBJECT_ATTRIBUTE:
		return "ATTRIBUTE"
	case pg_query.ObjectType_OBJECT_CAST:
		return "CAST"
	case pg_query.ObjectType_OBJECT_COLUMN:
		return "COLUMN"
	case pg_query.ObjectType_OBJECT_COLLATION:
		return "COLLATION"
	case pg_query.ObjectType_OBJECT_CONVERSION:
		return "CONVERSION"
	case pg_query.ObjectType_OBJECT_DATABASE:
		return "DATABASE"
	case pg_query.ObjectType_OBJECT_DEFAULT:
		return "DEFAULT"
	case pg_query.ObjectType_OBJECT_DEFACL:
		return "DEFAULT PRIVILEGES"
	case pg_query.ObjectType_OBJECT_DOMAIN:
		return "DOMAIN"
	case pg_query.ObjectType_OBJECT_DOMCONSTRAINT, pg_query.ObjectType_OBJECT_TABCONSTRAINT:
		return "CONSTRAINT"
	case pg_query.ObjectType_OBJECT_EVENT_TRIGGER:
		return "EVENT TRIGGER"
	case pg_query.ObjectType_OBJECT_EXTENSION:
		return "EXTENSION"
	case pg_query.ObjectType_OBJECT_FDW:
		return "FOREIGN DATA WRAPPER"
	case pg_query.ObjectType_OBJECT_FOREIGN_SERVER:
		return "SERVER"
	case pg_query.ObjectType_OBJECT_FOREIGN_TABLE:
		return "FOREIGN TABLE"
	case pg_query.ObjectType_OBJECT_FUNCTION:
		return "FUNCTION"
	case pg_query.ObjectType_OBJECT_INDEX:
		return "INDEX"
	case pg_query.ObjectType_OBJECT_LANGUAGE:
		return "LANGUAGE"
	case pg_query.ObjectType_OBJECT_LARGEOBJECT:
		return "LARGE OBJECT"
	case pg_query.ObjectType_OBJECT_MATVIEW:
		return "MATERIALIZED VIEW"
	case pg_query.ObjectType_OBJECT_OPCLASS:
		return "OPERATOR CLASS"
	case pg_query.ObjectType_OBJECT_OPERATOR:
		return "OPERATOR"
	case pg_query.ObjectType_OBJECT_OPFAMILY:
		return "OPERATOR FAMILY"
	case pg_query.ObjectType_OBJECT_PARAMETER_ACL:
		return "PARAMETER"
	case pg_query.ObjectType_OBJECT_POLICY:
		return "POLICY"
	case pg_query.ObjectType_OBJECT_PROCEDURE:
		return "PROCEDURE"
	case pg_query.ObjectType_OBJECT_PUBLICATION:
		return "PUBLICATION"
	case pg_query.ObjectType_OBJECT_PUBLICATION_NAMESPACE:
		return "PUBLICATION SCHEMA"
	case pg_query.ObjectType_OBJECT_PUBLICATION_REL:
		return "PUBLICATION TABLE"
	case pg_query.ObjectType_OBJECT_ROLE:
		return "ROLE"
	case pg_query.ObjectType_OBJECT_ROUTINE:
		return "ROUTINE"
	case pg_query.ObjectType_OBJECT_RULE:
		return "RULE"
	case pg_query.ObjectType_OBJECT_SCHEMA:
		return "SCHEMA"
	case pg_query.ObjectType_OBJECT_SEQUENCE:
		return "SEQUENCE"
	case pg_query.ObjectType_OBJECT_SUBSCRIPTION:
		return "SUBSCRIPTION"
	case pg_query.ObjectType_OBJECT_STATISTIC_EXT:
		return "STATISTICS"
	case pg_query.ObjectType_OBJECT_TABLE:
		return "TABLE"
	case pg_query.ObjectType_OBJECT_TABLESPACE:
		return "TABLESPACE"
	case pg_query.ObjectType_OBJECT_TRANSFORM:
		return "TRANSFORM"
	case pg_query.ObjectType_OBJECT_TRIGGER:
		return "TRIGGER"
	case pg_query.ObjectType_OBJECT_TSCONFIGURATION:
		return "TEXT SEARCH CONFIGURATION"
	case pg_query.ObjectType_OBJECT_TSDICTIONARY:
		return "TEXT SEARCH DICTIONARY"
	case pg_query.ObjectType_OBJECT_TSPARSER:
		return "TEXT SEARCH PARSER"
	case pg_query.ObjectType_OBJECT_TSTEMPLATE:
		return "TEXT SEARCH TEMPLATE"
	case pg_query.ObjectType_OBJECT_TYPE:
		return "TYPE"
	case pg_query.ObjectType_OBJECT_USER_MAPPING:
		return "USER MAPPING"
	case pg_query.ObjectType_OBJECT_VIEW:
		return "VIEW"
	}
	return ""
}
