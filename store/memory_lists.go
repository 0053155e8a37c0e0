package store

import (
	"context"
	"fmt"
	"sort"
)

// accessState is the mode and access lists of one scope.
type accessState struct {
	whitelistOnly bool
	lists         map[string]map[string]struct{}
}

// validList reports whether list names an access list of scope.
func validList(scope Scope, list string) bool {
	switch list {
	case ListBlacklist, ListWhitelist:
		return true
	case ListAdmins:
		return scope.Room != ""
	}
	return false
}

// withAccess runs f with the access state of scope locked; for a user scope the state is
// created when create is true (f sees nil otherwise).
func (m *Memory) withAccess(scope Scope, create bool, op string, f func(Room, *accessState) error) error {
	if scope.Room != "" {
		r := m.room(scope.Room)
		if r == nil {
			return noRoom(op, scope.Room)
		}
		r.acl.mu.Lock()
		defer r.acl.mu.Unlock()
		settings := r.settings
		settings.WhitelistOnly = r.acl.state.whitelistOnly
		return f(settings, &r.acl.state)
	}
	m.direct.mu.Lock()
	defer m.direct.mu.Unlock()
	st := m.direct.byUser[scope.User]
	if st == nil && create {
		st = &accessState{}
		m.direct.byUser[scope.User] = st
	}
	return f(Room{}, st)
}

func checkList(scope Scope, list, op string) error {
	if !validList(scope, list) {
		return fmt.Errorf("store: %s %q: %w", op, list, ErrNoList)
	}
	return nil
}

// ListAdd adds users to a list; see AccessLists.
func (m *Memory) ListAdd(_ context.Context, scope Scope, list string, users []string, limit int) ([]string, error) {
	if err := checkList(scope, list, "add to list"); err != nil {
		return nil, err
	}
	var added []string
	err := m.withAccess(scope, true, "add to list", func(_ Room, st *accessState) error {
		set := st.lists[list]
		seen := make(map[string]struct{}, len(users))
		for _, u := range users {
			if _, on := set[u]; on {
				continue
			}
			if _, dup := seen[u]; dup {
				continue
			}
			seen[u] = struct{}{}
			added = append(added, u)
		}
		if limit > 0 && len(set)+len(added) > limit {
			added = nil
			return fmt.Errorf("store: add to %s: %w (%d users at most)", list, ErrListLimit, limit)
		}
		if len(added) == 0 {
			return nil
		}
		if st.lists == nil {
			st.lists = make(map[string]map[string]struct{})
		}
		if set == nil {
			set = make(map[string]struct{}, len(added))
			st.lists[list] = set
		}
		for _, u := range added {
			set[u] = struct{}{}
		}
		return nil
	})
	return added, err
}

// ListRemove removes users from a list; see AccessLists.
func (m *Memory) ListRemove(_ context.Context, scope Scope, list string, users []string) ([]string, error) {
	if err := checkList(scope, list, "remove from list"); err != nil {
		return nil, err
	}
	var removed []string
	err := m.withAccess(scope, false, "remove from list", func(_ Room, st *accessState) error {
		if st == nil {
			return nil
		}
		set := st.lists[list]
		for _, u := range users {
			if _, on := set[u]; on {
				delete(set, u)
				removed = append(removed, u)
			}
		}
		return nil
	})
	return removed, err
}

// ListUsers returns the users on a list, sorted; see AccessLists.
func (m *Memory) ListUsers(_ context.Context, scope Scope, list string) ([]string, error) {
	if err := checkList(scope, list, "list users"); err != nil {
		return nil, err
	}
	users := []string{}
	err := m.withAccess(scope, false, "list users", func(_ Room, st *accessState) error {
		if st == nil {
			return nil
		}
		for u := range st.lists[list] {
			users = append(users, u)
		}
		return nil
	})
	sort.Strings(users)
	return users, err
}

// SetWhitelistOnly sets the mode of a scope; see AccessLists.
func (m *Memory) SetWhitelistOnly(_ context.Context, scope Scope, on bool) (bool, error) {
	changed := false
	err := m.withAccess(scope, on, "set whitelist mode", func(_ Room, st *accessState) error {
		if st != nil && st.whitelistOnly != on {
			st.whitelistOnly = on
			changed = true
		}
		return nil
	})
	return changed, err
}

// Access returns the mode of a scope and the lists that hold user; see AccessLists.
func (m *Memory) Access(_ context.Context, scope Scope, user string) (Room, bool, Listed, error) {
	var room Room
	var whitelistOnly bool
	var listed Listed
	err := m.withAccess(scope, false, "access", func(r Room, st *accessState) error {
		room = r
		if st == nil {
			return nil
		}
		whitelistOnly = st.whitelistOnly
		_, listed.Admin = st.lists[ListAdmins][user]
		_, listed.Blacklisted = st.lists[ListBlacklist][user]
		_, listed.Whitelisted = st.lists[ListWhitelist][user]
		return nil
	})
	return room, whitelistOnly, listed, err
}
