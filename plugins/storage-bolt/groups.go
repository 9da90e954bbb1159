package storagebolt

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/timgw/timgw/plugins/storage"
	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// JoinGroup implements storage.Backend.
func (s *Store) JoinGroup(_ context.Context, req *pb.JoinGroupRequest) (*pb.JoinGroupResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	if req.GroupId == "" {
		return nil, fmt.Errorf("storage-bolt: join group: empty group id: %w", storage.ErrInvalid)
	}
	joined, err := s.joinSeq(req.GroupId)
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: join group %s: %w", req.GroupId, err)
	}
	err = s.db.Batch(func(tx *bolt.Tx) error {
		groups := tx.Bucket(bGroups)
		gk := []byte(req.GroupId)
		if old := groups.Get(gk); old == nil || req.Name != "" {
			v, err := proto.Marshal(&pb.Group{Name: req.Name})
			if err != nil {
				return err
			}
			if err := groups.Put(gk, v); err != nil {
				return err
			}
		}
		members, ug := tx.Bucket(bMembers), tx.Bucket(bUGroups)
		for _, m := range req.Members {
			if m == "" {
				continue
			}
			if err := members.Put(pairKey(req.GroupId, m), nil); err != nil {
				return err
			}
			// A new member gets read fan-out chats after its join; one already a member
			// (a join at every login) keeps its floor.
			if k := pairKey(m, req.GroupId); ug.Get(k) == nil {
				if err := putU64(ug, k, uint64(joined)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: join group %s: %w", req.GroupId, err)
	}
	return &pb.JoinGroupResponse{}, nil
}

// LeaveGroup implements storage.Backend.
func (s *Store) LeaveGroup(_ context.Context, req *pb.LeaveGroupRequest) (*pb.LeaveGroupResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bUGroups).Delete(pairKey(req.Member, req.GroupId)); err != nil {
			return err
		}
		return tx.Bucket(bMembers).Delete(pairKey(req.GroupId, req.Member))
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: leave group %s: %w", req.GroupId, err)
	}
	return &pb.LeaveGroupResponse{}, nil
}

// defaultListLimit bounds list pages when the request gives no limit.
const defaultListLimit = 1000

// ListGroups implements storage.Backend.
func (s *Store) ListGroups(_ context.Context, req *pb.ListRequest) (*pb.ListGroupsResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	limit := int(req.Limit)
	if limit <= 0 {
		limit = defaultListLimit
	}
	res := &pb.ListGroupsResponse{}
	err := s.db.View(func(tx *bolt.Tx) error {
		members := tx.Bucket(bMembers).Cursor()
		c := tx.Bucket(bGroups).Cursor()
		k, v := c.Seek([]byte(req.After))
		if k != nil && req.After != "" && string(k) == req.After {
			k, v = c.Next()
		}
		for ; k != nil; k, v = c.Next() {
			if len(res.Groups) == limit {
				res.More = true
				break
			}
			g := &pb.Group{}
			if err := proto.Unmarshal(v, g); err != nil {
				return fmt.Errorf("decode group %q: %w", k, err)
			}
			g.GroupId = string(k)
			prefix := strKey(g.GroupId)
			for mk, _ := members.Seek(prefix); mk != nil && bytes.HasPrefix(mk, prefix); mk, _ = members.Next() {
				m, rest, err := readStr(mk[len(prefix):])
				if err != nil || len(rest) != 0 {
					return fmt.Errorf("member key %x: %w", mk, errKey)
				}
				g.Members = append(g.Members, m)
			}
			res.Groups = append(res.Groups, g)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: list groups: %w", err)
	}
	return res, nil
}

// PutUser implements storage.Backend.
func (s *Store) PutUser(_ context.Context, req *pb.PutUserRequest) (*pb.PutUserResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	u := req.GetUser()
	if u.GetUserId() == "" {
		return nil, fmt.Errorf("storage-bolt: put user: empty user id: %w", storage.ErrInvalid)
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bUsers)
		stored := &pb.User{}
		if v := b.Get([]byte(u.UserId)); v != nil {
			if err := proto.Unmarshal(v, stored); err != nil {
				return fmt.Errorf("decode user %q: %w", u.UserId, err)
			}
		}
		if u.Nick != "" {
			stored.Nick = u.Nick
		}
		if u.Avatar != "" {
			stored.Avatar = u.Avatar
		}
		stored.UserId = ""
		v, err := proto.Marshal(stored)
		if err != nil {
			return err
		}
		return b.Put([]byte(u.UserId), v)
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: put user: %w", err)
	}
	return &pb.PutUserResponse{}, nil
}

// ListUsers implements storage.Backend.
func (s *Store) ListUsers(_ context.Context, req *pb.ListRequest) (*pb.ListUsersResponse, error) {
	if err := s.opened(); err != nil {
		return nil, err
	}
	limit := int(req.Limit)
	if limit <= 0 {
		limit = defaultListLimit
	}
	res := &pb.ListUsersResponse{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bUsers).Cursor()
		k, v := c.Seek([]byte(req.After))
		if k != nil && req.After != "" && string(k) == req.After {
			k, v = c.Next()
		}
		for ; k != nil; k, v = c.Next() {
			if len(res.Users) == limit {
				res.More = true
				break
			}
			u := &pb.User{}
			if err := proto.Unmarshal(v, u); err != nil {
				return fmt.Errorf("decode user %q: %w", k, err)
			}
			u.UserId = string(k)
			res.Users = append(res.Users, u)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage-bolt: list users: %w", err)
	}
	return res, nil
}
