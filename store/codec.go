package store

import "encoding/json"

func unmarshalToken(b []byte, t *Token) error { return json.Unmarshal(b, t) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
