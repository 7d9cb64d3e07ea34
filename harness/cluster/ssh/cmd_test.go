package ssh

import "testing"

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		sudo bool
		env  []string
		dir  string
		argv []string
		want string
	}{
		{argv: []string{"systemctl", "stop", "keepalived"}, want: "systemctl stop keepalived"},
		{sudo: true, argv: []string{"iptables", "-A", "RACKDRILL-NFS", "-p", "tcp", "--dport", "2049", "-j", "DROP"},
			want: "sudo -n -- iptables -A RACKDRILL-NFS -p tcp --dport 2049 -j DROP"},
		{argv: []string{"sh", "-c", `echo "$HOME"; ls`}, want: `sh -c 'echo "$HOME"; ls'`},
		{argv: []string{"printf", "%s", "it's"}, want: `printf %s 'it'\''s'`},
		{argv: []string{"true", ""}, want: "true ''"},
		{sudo: true, env: []string{"A=b c"}, dir: "/srv/x y", argv: []string{"pwd"}, want: `cd '/srv/x y' && sudo -n -- env 'A=b c' pwd`},
	} {
		c := &cmd{n: &node{a: access{sudo: tc.sudo}}}
		c.Init(c, tc.argv)
		c.SetEnv(tc.env...).SetDir(tc.dir)
		if got := c.line(); got != tc.want {
			t.Errorf("line(%q) = %s, want %s", tc.argv, got, tc.want)
		}
	}
}
