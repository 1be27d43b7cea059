package iceberg

import (
	"encoding/json"
	"fmt"

	"github.com/apache/iceberg-go"
)

// tableMetadata is the part of a table metadata file the reader uses.
// It is decoded here rather than with iceberg-go's table package, whose
// query-planning dependencies do not build against the Arrow version Luna
// links; schemas and partition specs still decode with iceberg-go's own
// types.
type tableMetadata struct {
	FormatVersion     int                     `json:"format-version"`
	Location          string                  `json:"location"`
	CurrentSchemaID   int                     `json:"current-schema-id"`
	Schemas           []*iceberg.Schema       `json:"schemas"`
	Schema            *iceberg.Schema         `json:"schema"` // v1
	PartitionSpecs    []iceberg.PartitionSpec `json:"partition-specs"`
	CurrentSnapshotID *int64                  `json:"current-snapshot-id"`
	Snapshots         []Snapshot              `json:"snapshots"`
	Properties        map[string]string       `json:"properties"`
}

// Snapshot is one snapshot of a table.
type Snapshot struct {
	SnapshotID       int64             `json:"snapshot-id"`
	ParentSnapshotID *int64            `json:"parent-snapshot-id,omitempty"`
	SequenceNumber   int64             `json:"sequence-number"`
	TimestampMs      int64             `json:"timestamp-ms"`
	ManifestList     string            `json:"manifest-list,omitempty"`
	Manifests        []string          `json:"manifests,omitempty"` // v1 inline list
	Summary          map[string]string `json:"summary,omitempty"`
	SchemaID         *int              `json:"schema-id,omitempty"`
}

func parseMetadata(data []byte) (*tableMetadata, error) {
	var m tableMetadata
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	switch m.FormatVersion {
	case 1, 2:
	case 3:
		// v3 tables read like v2 unless they use deletion vectors, which
		// the scan rejects when it meets one.
	default:
		return nil, fmt.Errorf("format-version %d is not supported", m.FormatVersion)
	}
	if len(m.Schemas) == 0 && m.Schema != nil {
		m.Schemas = []*iceberg.Schema{m.Schema}
		m.CurrentSchemaID = m.Schema.ID
	}
	if m.CurrentSchema() == nil {
		return nil, fmt.Errorf("no schema with current-schema-id %d", m.CurrentSchemaID)
	}
	return &m, nil
}

func (m *tableMetadata) CurrentSchema() *iceberg.Schema {
	for _, s := range m.Schemas {
		if s.ID == m.CurrentSchemaID {
			return s
		}
	}
	return nil
}

func (m *tableMetadata) SnapshotByID(id int64) *Snapshot {
	for i := range m.Snapshots {
		if m.Snapshots[i].SnapshotID == id {
			return &m.Snapshots[i]
		}
	}
	return nil
}

func (m *tableMetadata) CurrentSnapshot() *Snapshot {
	if m.CurrentSnapshotID == nil || *m.CurrentSnapshotID < 0 {
		return nil
	}
	return m.SnapshotByID(*m.CurrentSnapshotID)
}
