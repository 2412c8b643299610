// Applies Keel's SCRAM users and ACLs to the local secured broker in one JVM (run by broker.sh
// with Java's source launcher: `java -cp '<libs>/*' KeelSecurity.java <admin.properties> <spec>`).
//
// The spec has one entry per line, made by broker.sh from keel_contracts.acl (the one table):
//   scram <user> <password file>
//   acl User:<name> <OPERATION> <TOPIC|GROUP|CLUSTER> <LITERAL|PREFIXED> <resource name>
// Both are idempotent: a SCRAM upsert replaces the credential, an existing ACL is kept.
// Passwords are read from their files and never printed.

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class KeelSecurity {
  public static void main(String[] args) throws Exception {
    Properties props = new Properties();
    try (var in = Files.newInputStream(Path.of(args[0]))) {
      props.load(in);
    }
    List<UserScramCredentialAlteration> users = new ArrayList<>();
    List<AclBinding> acls = new ArrayList<>();
    for (String raw : Files.readAllLines(Path.of(args[1]), StandardCharsets.UTF_8)) {
      String line = raw.strip();
      if (line.isEmpty() || line.startsWith("#")) continue;
      String[] f = line.split("\\s+");
      if (f[0].equals("scram") && f.length == 3) {
        String password = Files.readString(Path.of(f[2]), StandardCharsets.UTF_8).strip();
        users.add(new UserScramCredentialUpsertion(
            f[1], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password));
      } else if (f[0].equals("acl") && f.length == 6) {
        acls.add(new AclBinding(
            new ResourcePattern(ResourceType.fromString(f[3]), f[5], PatternType.fromString(f[4])),
            new AccessControlEntry(f[1], "*", AclOperation.fromString(f[2]), AclPermissionType.ALLOW)));
      } else {
        throw new IllegalArgumentException("bad spec line: " + f[0] + " (" + f.length + " fields)");
      }
    }
    try (Admin admin = Admin.create(props)) {
      if (!users.isEmpty()) admin.alterUserScramCredentials(users).all().get(60, TimeUnit.SECONDS);
      if (!acls.isEmpty()) admin.createAcls(acls).all().get(60, TimeUnit.SECONDS);
    }
    System.err.printf("kafka: %d SCRAM users and %d ACLs applied%n", users.size(), acls.size());
  }
}
