package store_test

import (
	"os"
	"testing"

	"github.com/apptokens/apptokens/store/etcd/etcdtest"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.SharedMain(m)) }
